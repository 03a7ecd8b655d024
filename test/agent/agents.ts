import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { consoleLogger, silentLogger } from '../../agent/log.ts';
import type { AgentOptions } from '../../agent/settings.ts';
import { startAgent } from '../../agent/start-agent.ts';
import type { ContractAgent, MakeAgent } from './contract.ts';

export const TEST_TOKEN = 'test-agent-token';

/** Set VMMIG_TEST_AGENT_LOG=1 to see the agents' log lines. */
export const testLogger = (name: string) =>
  process.env.VMMIG_TEST_AGENT_LOG ? consoleLogger(name) : silentLogger;

export async function tempDir(prefix: string): Promise<string> {
  return mkdtemp(path.join(os.tmpdir(), prefix));
}

/** Agents in this process, each with its own dir, all sharing one shared-storage dir; no etcd, InfluxDB, API. */
export async function agentFactory(
  driver: 'qemu' | 'sim',
  extra: Partial<AgentOptions> = {},
): Promise<{ root: string; makeAgent: MakeAgent; cleanup: () => Promise<void> }> {
  const root = await tempDir(`vmmig-agent-${driver}-`);
  const makeAgent: MakeAgent = async (name): Promise<ContractAgent> => {
    const agent = await startAgent({
      name,
      host: '127.0.0.1',
      port: 0,
      dir: path.join(root, name),
      token: TEST_TOKEN,
      driver,
      sharedStorageDir: path.join(root, 'shared'),
      guestImageDir: path.join(root, 'no-image'),
      migrationAddress: '127.0.0.1',
      networks: ['default'],
      liveness: null,
      metrics: null,
      registration: null,
      log: testLogger(name),
      ...extra,
    });
    return {
      url: agent.url,
      token: TEST_TOKEN,
      hostId: agent.hostId,
      dir: path.join(root, name),
      stop: agent.stop,
      driver: agent.driver,
    };
  };
  return { root, makeAgent, cleanup: () => rm(root, { recursive: true, force: true }) };
}
