import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { consoleLogger, silentLogger } from '../../agent/log.ts';
import type { PeerHost } from '../../agent/peers.ts';
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

/**
 * Agents in this process, each with its own dir, all sharing one shared-storage dir; no etcd, InfluxDB, API.
 * They do not register, so each one's peers (agent/peers.ts) are the factory's running agents, on
 * 127.0.0.1, plus those a test adds (addPeer): nothing else may be a migration target.
 */
export async function agentFactory(
  driver: 'qemu' | 'sim',
  extra: Partial<AgentOptions> = {},
): Promise<{
  root: string;
  makeAgent: MakeAgent;
  addPeer: (peer: PeerHost) => void;
  cleanup: () => Promise<void>;
}> {
  const root = await tempDir(`vmmig-agent-${driver}-`);
  const peers: PeerHost[] = [];
  const dropPeer = (name: string) => {
    const index = peers.findIndex((peer) => peer.name === name);
    if (index >= 0) peers.splice(index, 1);
  };
  const addPeer = (peer: PeerHost) => {
    dropPeer(peer.name);
    peers.push(peer);
  };
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
      peers: () => peers,
      log: testLogger(name),
      ...extra,
    });
    addPeer({
      id: agent.hostId,
      name,
      address: '127.0.0.1',
      migrationAddress: extra.migrationAddress === undefined ? '127.0.0.1' : extra.migrationAddress,
      agentUrl: agent.url,
    });
    return {
      url: agent.url,
      token: TEST_TOKEN,
      hostId: agent.hostId,
      dir: path.join(root, name),
      stop: async (options) => {
        await agent.stop(options);
        if (peers.some((peer) => peer.agentUrl === agent.url)) dropPeer(name);
      },
      driver: agent.driver,
    };
  };
  return { root, makeAgent, addPeer, cleanup: () => rm(root, { recursive: true, force: true }) };
}
