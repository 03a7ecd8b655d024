/**
 * Self-fencing of a sim agent whose etcd stops answering. The agent talks to an etcd of its own that
 * this file starts, so that SIGSTOP freezes etcd for this agent only (as a partition would: the kernel
 * still accepts its connections, nothing answers).
 */
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Etcd3 } from 'etcd3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readLastRenewal } from '../../agent/liveness.ts';
import { agentOptionsFromEnv, type AgentOptions } from '../../agent/settings.ts';
import { LIVENESS_STATE_FILE, type RunningAgent, startAgent } from '../../agent/start-agent.ts';
import { hostHealthKey } from '../../domain/config.ts';
import type { GuestState, MigrationStatus, PrepareIncomingResult } from '../../domain/agent-contract.ts';
import { fencingDeadlineMs } from '../../domain/fencing.ts';
import { type EtcdServer, startEtcd } from '../../scripts/services/etcd.ts';
import { eventually, ok } from '../agent/agent-client.ts';
import { testSpec } from '../agent/specs.ts';

const TTL_S = 3;
const TTL_MS = TTL_S * 1000;
const DEADLINE_MS = fencingDeadlineMs(TTL_S);
const TOKEN = 'fencing-test-token';

let root: string;
let etcd: EtcdServer;
let etcdFrozen = false;
let observer: Etcd3;
const agents: RunningAgent[] = [];

beforeAll(async () => {
  root = await mkdtemp(path.join(os.tmpdir(), 'vmmig-fencing-'));
  etcd = await startEtcd({ dir: path.join(root, 'etcd'), logFile: path.join(root, 'etcd.log') });
  observer = new Etcd3({ hosts: etcd.endpoints });
});

afterAll(async () => {
  if (etcdFrozen) process.kill(etcd.process.pid, 'SIGCONT');
  for (const agent of agents) await agent.stop();
  observer?.close();
  await etcd?.stop();
  await rm(root, { recursive: true, force: true });
});

function freezeEtcd(): void {
  process.kill(etcd.process.pid, 'SIGSTOP');
  etcdFrozen = true;
}

function thawEtcd(): void {
  process.kill(etcd.process.pid, 'SIGCONT');
  etcdFrozen = false;
}

interface FencingAgent {
  agent: RunningAgent;
  endpoint: { url: string; token: string };
  key: string;
  dir: string;
  logs: string[];
}

/** Set VMMIG_TEST_AGENT_LOG=1 to see the agents' log lines. */
function collectingLogger(name: string, logs: string[]): (line: string) => void {
  return (line) => {
    logs.push(line);
    if (process.env.VMMIG_TEST_AGENT_LOG) console.log(`${new Date().toISOString()} agent[${name}] ${line}`);
  };
}

/** A sim agent of its own dir, leased on this test's etcd (or, with `leased` false, holding no lease). */
async function startSim(
  name: string,
  leased: boolean,
  extra: Partial<AgentOptions> = {},
): Promise<FencingAgent> {
  const dir = path.join(root, name);
  const prefix = `f${randomUUID().slice(0, 8)}`;
  const logs: string[] = [];
  const agent = await startAgent({
    name,
    host: '127.0.0.1',
    port: 0,
    dir,
    token: TOKEN,
    driver: 'sim',
    sharedStorageDir: path.join(root, 'shared'),
    guestImageDir: path.join(root, 'no-image'),
    migrationAddress: '127.0.0.1',
    networks: ['default'],
    liveness: leased ? { endpoints: etcd.endpoints, prefix, ttlSeconds: TTL_S } : null,
    metrics: null,
    registration: null,
    // They do not register: this test's agents (all on 127.0.0.1) are each other's migration peers.
    peers: () =>
      agents.map((peer) => ({
        id: peer.hostId,
        name: peer.hostId,
        address: '127.0.0.1',
        migrationAddress: '127.0.0.1',
        agentUrl: peer.url,
      })),
    log: collectingLogger(name, logs),
    ...extra,
  });
  agents.push(agent);
  if (!leased) return { agent, endpoint: { url: agent.url, token: TOKEN }, key: '', dir, logs };
  await armFencing(agent.url);
  const key = hostHealthKey(prefix, agent.hostId);
  await eventually('the health key', async () => ((await leaseOf(key)) ? true : undefined), 10_000);
  return { agent, endpoint: { url: agent.url, token: TOKEN }, key, dir, logs };
}

const startSimAgent = (name: string, extra: Partial<AgentOptions> = {}) => startSim(name, true, extra);

/** A sim agent with no lease, for fencing it by hand in the middle of a migration. */
const startUnleasedSim = (name: string) => startSim(name, false);

async function startMigration(
  source: FencingAgent,
  destination: FencingAgent,
  id: string,
  maxBandwidthBytes: number,
): Promise<void> {
  const spec = (await ok<GuestState>(source.endpoint, 'GET', `/v1/guests/${id}`)).spec;
  const migrationId = `m-${randomUUID()}`;
  const incoming = await ok<PrepareIncomingResult>(
    destination.endpoint,
    'POST',
    `/v1/guests/${id}/prepare-incoming`,
    { migrationId, spec, listenAddress: '127.0.0.1' },
  );
  await ok(source.endpoint, 'POST', `/v1/guests/${id}/migration`, {
    migrationId,
    uri: incoming.uri,
    downtimeLimitMs: 50,
    maxBandwidthBytes,
  });
}

const migrationOf = (host: FencingAgent, id: string) =>
  ok<MigrationStatus>(host.endpoint, 'GET', `/v1/guests/${id}/migration`);

async function leaseOf(key: string): Promise<string | null> {
  const kv = (await observer.kv.range({ key: Buffer.from(key) })).kvs[0];
  return kv === undefined ? null : String(kv.lease);
}

async function runningGuest(host: FencingAgent): Promise<string> {
  const spec = testSpec();
  await ok(host.endpoint, 'PUT', `/v1/guests/${spec.id}`, spec);
  const started = await ok<GuestState>(host.endpoint, 'POST', `/v1/guests/${spec.id}/start`);
  expect(started.status).toBe('running');
  return spec.id;
}

const statusOf = async (host: FencingAgent, id: string): Promise<string> =>
  (await ok<GuestState>(host.endpoint, 'GET', `/v1/guests/${id}`)).status;

const lastRenewal = async (host: FencingAgent): Promise<number> => {
  const renewal = await readLastRenewal(path.join(host.dir, LIVENESS_STATE_FILE));
  if (renewal === null || !Number.isFinite(renewal.sentAtMs)) throw new Error('no renewal recorded');
  expect(renewal.deadlineMs).toBe(DEADLINE_MS);
  return renewal.sentAtMs;
};

const fenceLines = (host: FencingAgent) => host.logs.filter((line) => /fenc/i.test(line));

describe('agent self-fencing on a lost etcd lease (sim, TTL 3 s)', () => {
  it('never fences while the lease is renewed, over more than two TTLs', async () => {
    const host = await startSimAgent('healthy');
    const id = await runningGuest(host);
    const lease = await leaseOf(host.key);

    const until = Date.now() + 2 * TTL_MS + 1_000;
    while (Date.now() < until) {
      expect(await statusOf(host, id)).toBe('running');
      // Every renewal is recorded, so the record is never older than the deadline.
      expect(Date.now() - (await lastRenewal(host))).toBeLessThan(DEADLINE_MS);
      await sleep(250);
    }
    expect(await leaseOf(host.key)).toBe(lease);
    expect(host.logs.filter((line) => /liveness: fencing|fencing: stopping/.test(line))).toEqual([]);
    expect(host.logs.some((line) => line.includes(`self-fencing on`))).toBe(true);
  });

  it('stops its guests before the lease can expire when etcd freezes, and reconnects after', async () => {
    const host = await startSimAgent('frozen');
    const id = await runningGuest(host);
    const firstLease = await leaseOf(host.key);
    // A few keepalives in, so that the last renewal is one of them and not the grant.
    await sleep(TTL_MS / 2);

    freezeEtcd();
    const frozenAt = Date.now();
    const stoppedAt = await eventually(
      'the guest to be fenced',
      async () => ((await statusOf(host, id)) === 'running' ? undefined : Date.now()),
      2 * TTL_MS,
      25,
    );
    // Nothing etcd acknowledged was sent after the freeze: the record is the last renewal etcd saw.
    const sentAt = await lastRenewal(host);
    expect(sentAt).toBeLessThanOrEqual(frozenAt);
    expect(stoppedAt - sentAt).toBeLessThan(TTL_MS);
    expect(stoppedAt - sentAt).toBeGreaterThanOrEqual(DEADLINE_MS - 50);
    expect(await statusOf(host, id)).toBe('stopped');

    // Past the expiry, so that etcd drops the lease when it wakes up.
    await sleep(Math.max(0, sentAt + TTL_MS + 1_000 - Date.now()));
    thawEtcd();
    const secondLease = await eventually(
      'the key under a new lease',
      async () => {
        const lease = await leaseOf(host.key);
        return lease !== null && lease !== firstLease ? lease : undefined;
      },
      15_000,
    );
    expect(secondLease).not.toBe('0');
    await sleep(TTL_MS);
    expect(await leaseOf(host.key)).toBe(secondLease);
    expect(await statusOf(host, id)).toBe('stopped');
    const fences = host.logs.filter((line) => line.includes('fencing: stopping every sim guest'));
    expect(fences.length).toBeGreaterThanOrEqual(1);
    expect(fenceLines(host).some((line) => /no renewal of lease \d+ acknowledged/.test(line))).toBe(true);
  });

  it('only logs when FENCE_ON_LEASE_LOSS is false, or while the host flag leaves fencing disarmed', async () => {
    const env = {
      AGENT_NAME: 'unfenced',
      AGENT_PORT: '0',
      AGENT_DIR: path.join(root, 'unfenced'),
      AGENT_TOKEN: TOKEN,
      SHARED_STORAGE_DIR: path.join(root, 'shared'),
    };
    expect(agentOptionsFromEnv(env).fenceOnLeaseLoss).toBe(true);
    expect(() => agentOptionsFromEnv({ ...env, FENCE_ON_LEASE_LOSS: 'nope' })).toThrow(
      "FENCE_ON_LEASE_LOSS must be true or false, got 'nope'",
    );
    const { fenceOnLeaseLoss } = agentOptionsFromEnv({ ...env, FENCE_ON_LEASE_LOSS: 'false' });
    expect(fenceOnLeaseLoss).toBe(false);

    const host = await startSimAgent('unfenced', { fenceOnLeaseLoss });
    const id = await runningGuest(host);
    // Fencing on, but nobody would restart the guests elsewhere: the API disarms it with the flag off.
    const unarmed = await startSimAgent('unarmed');
    await armFencing(unarmed.agent.url, false);
    const unarmedId = await runningGuest(unarmed);
    const firstLease = await leaseOf(host.key);
    freezeEtcd();
    const until = Date.now() + TTL_MS + 1_000;
    while (Date.now() < until) {
      expect(await statusOf(host, id)).toBe('running');
      expect(await statusOf(unarmed, unarmedId)).toBe('running');
      await sleep(100);
    }
    thawEtcd();
    await eventually(
      'the key under a new lease',
      async () => {
        const lease = await leaseOf(host.key);
        return lease !== null && lease !== firstLease ? lease : undefined;
      },
      15_000,
    );
    expect(await statusOf(host, id)).toBe('running');
    expect(host.logs.some((line) => line.includes('self-fencing off'))).toBe(true);
    expect(host.logs.some((line) => line.includes('self-fencing skipped (FENCE_ON_LEASE_LOSS is off)'))).toBe(
      true,
    );
    expect(host.logs.some((line) => line.includes('fencing: stopping every sim guest'))).toBe(false);
    expect(unarmed.logs.some((line) => line.includes('host flag auto_migrate_on_host_down is off'))).toBe(
      true,
    );
    expect(await statusOf(unarmed, unarmedId)).toBe('running');
  });

  it("fails a fenced sim source's migration, and a fenced destination never runs the guest", async () => {
    const MIB = 1024 * 1024;
    const a = await startUnleasedSim('sim-a');
    const b = await startUnleasedSim('sim-b');

    // The source fences mid-copy: the migration fails on both ends and nothing runs.
    const busy = testSpec({ dirtyRateMibs: 40, fillMb: 48 });
    await ok(a.endpoint, 'PUT', `/v1/guests/${busy.id}`, busy);
    await ok(a.endpoint, 'POST', `/v1/guests/${busy.id}/start`);
    await startMigration(a, b, busy.id, 4 * MIB);
    await a.agent.driver.fence('test: source fenced');
    expect(await migrationOf(a, busy.id)).toMatchObject({
      status: 'failed',
      errorDesc: 'source host fenced itself: test: source fenced',
    });
    expect(await statusOf(a, busy.id)).toBe('stopped');
    await eventually(
      'the destination to hear of the failure',
      async () => ((await migrationOf(b, busy.id)).status === 'failed' ? true : undefined),
      5_000,
    );
    expect(await statusOf(b, busy.id)).not.toBe('running');

    // The destination fences mid-copy: the completion that follows does not start the guest there.
    const quiet = testSpec();
    await ok(a.endpoint, 'PUT', `/v1/guests/${quiet.id}`, quiet);
    await ok(a.endpoint, 'POST', `/v1/guests/${quiet.id}/start`);
    await startMigration(a, b, quiet.id, 64 * MIB);
    await b.agent.driver.fence('test: destination fenced');
    expect(await statusOf(b, quiet.id)).toBe('stopped');
    await eventually(
      'the source to complete',
      async () => ((await migrationOf(a, quiet.id)).status === 'completed' ? true : undefined),
      15_000,
    );
    await sleep(1_500);
    expect(await statusOf(b, quiet.id)).toBe('stopped');
    expect(await migrationOf(b, quiet.id)).toMatchObject({
      status: 'failed',
      errorDesc: 'destination host fenced itself: test: destination fenced',
    });
  });
});

/** As the API does before it turns the host's auto_migrate_on_host_down on: fencing pays only then. */
async function armFencing(url: string, armed = true): Promise<void> {
  const res = await fetch(`${url}/v1/fencing`, {
    method: 'PUT',
    headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
    body: JSON.stringify({ armed }),
  });
  if (!res.ok) throw new Error(`arming the agent's fencing: ${res.status} ${await res.text()}`);
}
