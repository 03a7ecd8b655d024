import { type ChildProcess, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { Etcd3 } from 'etcd3';
import { afterAll, describe, expect, inject, it } from 'vitest';
import type {
  GuestState,
  HostFacts,
  MigrationStatus,
  PrepareIncomingResult,
} from '../../domain/agent-contract.ts';
import { hostHealthKey } from '../../domain/config.ts';
import { eventually, ok } from './agent-client.ts';
import { agentFactory, TEST_TOKEN, tempDir } from './agents.ts';
import { testSpec } from './specs.ts';

const repoRoot = path.resolve(import.meta.dirname, '../..');
const etcd = new Etcd3({ hosts: inject('etcdEndpoints') });
const { makeAgent, addPeer, cleanup } = await agentFactory('sim');
const stops: (() => unknown)[] = [];
afterAll(async () => {
  for (const stop of stops.reverse()) await stop();
  etcd.close();
  await cleanup();
});

/** An API stand-in that refuses the first registrations, as an API that starts after the agent. */
async function fakeApi(): Promise<{
  url: string;
  registrations: { auth: string; facts: HostFacts }[];
  server: Server;
}> {
  const registrations: { auth: string; facts: HostFacts }[] = [];
  let calls = 0;
  const server = createServer(async (request: IncomingMessage, response) => {
    let body = '';
    for await (const chunk of request) body += String(chunk);
    calls += 1;
    if (request.url !== '/v1/hosts/register' || calls <= 2) {
      response.writeHead(503).end();
      return;
    }
    registrations.push({ auth: request.headers.authorization ?? '', facts: JSON.parse(body) as HostFacts });
    response.writeHead(200, { 'content-type': 'application/json' }).end('{}');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, registrations, server };
}

function agentUrlFrom(child: ChildProcess): Promise<string> {
  return new Promise((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      const match = /listening on (http:\/\/\S+)/.exec(out);
      if (match) resolve(match[1]!);
    });
    child.once('exit', (code) => reject(new Error(`agent exited early (${code}): ${out}`)));
  });
}

describe('agent/main.ts as a process', () => {
  it('runs from the environment, registers, keeps its lease, migrates over HTTP, exits 0 on SIGTERM', async () => {
    const dir = await tempDir('vmmig-main-');
    stops.push(() => rm(dir, { recursive: true, force: true }));
    const api = await fakeApi();
    stops.push(() => api.server.close());
    const prefix = `t${randomUUID().slice(0, 8)}`;
    // The credential enrolment would have stored (test/integration/host-credentials.test.ts enrols for real).
    await mkdir(path.join(dir, 'agent'), { recursive: true });
    await writeFile(path.join(dir, 'agent', 'credential'), `${TEST_TOKEN}\n`, { mode: 0o600 });
    const child = spawn(path.join(repoRoot, 'node_modules/.bin/tsx'), ['agent/main.ts'], {
      cwd: repoRoot,
      env: {
        ...process.env,
        AGENT_NAME: 'host-main',
        AGENT_PORT: '0',
        AGENT_DIR: path.join(dir, 'agent'),
        AGENT_PEER_TOKEN: TEST_TOKEN,
        AGENT_DRIVER: 'sim',
        SHARED_STORAGE_DIR: path.join(dir, 'shared'),
        ETCD_ENDPOINTS: inject('etcdEndpoints').join(','),
        ETCD_PREFIX: prefix,
        HEALTH_TTL_S: '3',
        INFLUX_URL: inject('influxUrl'),
        INFLUX_DB: `agent_main_${randomUUID().slice(0, 8)}`,
        METRICS_INTERVAL_S: '1',
        API_URL: api.url,
        AGENT_CPUS: '96',
        AGENT_MEMORY_MB: '524288',
        AGENT_CPU_MODEL: 'Sim CPU 9000',
        AGENT_MICROCODE: '0x42',
        AGENT_KERNEL: '6.1.0-sim',
        AGENT_QEMU_VERSION: '9.9.9',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    stops.push(() => child.kill('SIGKILL'));
    const b = { url: await agentUrlFrom(child), token: TEST_TOKEN };

    const facts = await ok<HostFacts>(b, 'GET', '/v1/facts');
    expect(facts).toMatchObject({
      name: 'host-main',
      driver: 'sim',
      cpus: 96,
      memoryMb: 524288,
      cpuModel: 'Sim CPU 9000',
      microcode: '0x42',
      kernel: '6.1.0-sim',
      qemuVersion: '9.9.9',
      agentUrl: b.url,
    });

    const registered = await eventually('a registration', async () => api.registrations[0], 10_000);
    // It registers with its own credential: an agent holds no API token.
    expect(registered.auth).toBe(`Bearer ${TEST_TOKEN}`);
    expect(registered.facts.hostId).toBe(facts.hostId);

    const key = hostHealthKey(prefix, facts.hostId);
    const health = await eventually(
      'the health key',
      async () => (await etcd.get(key).json()) ?? undefined,
      10_000,
    );
    expect(health).toMatchObject({ name: 'host-main', agentUrl: b.url });

    // A sim migration into the child process goes over the internal HTTP route (no shortcut); the
    // in-process source does not register, so it is told the child is a peer.
    addPeer({
      id: facts.hostId,
      name: 'host-main',
      address: '127.0.0.1',
      migrationAddress: null,
      agentUrl: b.url,
    });
    const a = await makeAgent('host-inproc');
    stops.push(() => a.stop());
    const spec = testSpec();
    await ok(a, 'PUT', `/v1/guests/${spec.id}`, spec);
    await ok(a, 'POST', `/v1/guests/${spec.id}/start`);
    const migrationId = `m-${randomUUID()}`;
    const incoming = await ok<PrepareIncomingResult>(b, 'POST', `/v1/guests/${spec.id}/prepare-incoming`, {
      migrationId,
      spec,
      listenAddress: '127.0.0.1',
    });
    expect(incoming.uri.startsWith(`sim+${b.url}/`)).toBe(true);
    await ok(a, 'POST', `/v1/guests/${spec.id}/migration`, { migrationId, uri: incoming.uri });
    await eventually(
      'completion',
      async () =>
        (await ok<MigrationStatus>(a, 'GET', `/v1/guests/${spec.id}/migration`)).status === 'completed'
          ? true
          : undefined,
      10_000,
    );
    const moved = await eventually(
      'the guest to run in the child',
      async () => {
        const guest = await ok<GuestState>(b, 'GET', `/v1/guests/${spec.id}`);
        return guest.status === 'running' ? guest : undefined;
      },
      5_000,
    );
    expect(moved.hypervisorStatus).toBe('running');

    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
    expect(await etcd.get(key).string()).toBeNull();
  });
});
