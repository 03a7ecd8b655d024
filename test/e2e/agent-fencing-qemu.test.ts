/**
 * Self-fencing of a QEMU agent: its QEMU is killed before the lease can expire when etcd freezes, and
 * an agent that starts after the previous one's deadline kills what it left instead of running it.
 * The agents talk to an etcd of their own that this file starts and SIGSTOPs.
 */
import { randomUUID } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Etcd3 } from 'etcd3';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { readLastRenewal } from '../../agent/liveness.ts';
import { processAlive } from '../../agent/proc-stat.ts';
import { LIVENESS_STATE_FILE, type RunningAgent, startAgent } from '../../agent/start-agent.ts';
import type { GuestState } from '../../domain/agent-contract.ts';
import { hostHealthKey } from '../../domain/config.ts';
import { fencingDeadlineMs } from '../../domain/fencing.ts';
import { type EtcdServer, startEtcd } from '../../scripts/services/etcd.ts';
import { eventually, ok } from '../agent/agent-client.ts';
import { testSpec } from '../agent/specs.ts';

const TOKEN = 'fencing-qemu-token';
const SHORT_TTL_S = 3;
const LONG_TTL_S = 10;

let root: string;
let etcd: EtcdServer;
let etcdFrozen = false;
let observer: Etcd3;
const agents: RunningAgent[] = [];
const pids = new Set<number>();
const dir = () => path.join(root, 'host-q');
const prefix = `fq${randomUUID().slice(0, 8)}`;

beforeAll(async () => {
  root = await mkdtemp(path.join(os.tmpdir(), 'vmmig-fencing-qemu-'));
  etcd = await startEtcd({ dir: path.join(root, 'etcd'), logFile: path.join(root, 'etcd.log') });
  observer = new Etcd3({ hosts: etcd.endpoints });
});

afterAll(async () => {
  if (etcdFrozen) process.kill(etcd.process.pid, 'SIGCONT');
  for (const agent of agents) await agent.stop().catch(() => undefined);
  for (const pid of pids) if (await processAlive(pid)) process.kill(pid, 'SIGKILL');
  observer?.close();
  await etcd?.stop();
  await rm(root, { recursive: true, force: true });
});

const logs: string[] = [];

async function startQemuAgent(
  ttlSeconds: number,
): Promise<{ agent: RunningAgent; url: string; token: string }> {
  const agent = await startAgent({
    name: 'host-q',
    host: '127.0.0.1',
    port: 0,
    dir: dir(),
    token: TOKEN,
    driver: 'qemu',
    sharedStorageDir: path.join(root, 'shared'),
    guestImageDir: inject('guestImageDir'),
    migrationAddress: '127.0.0.1',
    networks: ['default'],
    liveness: { endpoints: etcd.endpoints, prefix, ttlSeconds },
    metrics: null,
    registration: null,
    stopGraceMs: 3_000,
    log: (line) => {
      logs.push(line);
      if (process.env.VMMIG_TEST_AGENT_LOG) console.log(`${new Date().toISOString()} agent[host-q] ${line}`);
    },
  });
  agents.push(agent);
  await armFencing(agent.url);
  const key = hostHealthKey(prefix, agent.hostId);
  await eventually('the health key', async () => ((await leaseOf(key)) ? true : undefined), 10_000);
  return { agent, url: agent.url, token: TOKEN };
}

async function leaseOf(key: string): Promise<string | null> {
  const kv = (await observer.kv.range({ key: Buffer.from(key) })).kvs[0];
  return kv === undefined ? null : String(kv.lease);
}

async function startGuest(endpoint: { url: string; token: string }, id: string): Promise<number> {
  const guest = await ok<GuestState>(endpoint, 'POST', `/v1/guests/${id}/start`);
  expect(guest.status).toBe('running');
  pids.add(guest.pid!);
  return guest.pid!;
}

const guestOf = (endpoint: { url: string; token: string }, id: string) =>
  ok<GuestState>(endpoint, 'GET', `/v1/guests/${id}`);

async function lastRenewalSentAt(): Promise<number> {
  const renewal = await readLastRenewal(path.join(dir(), LIVENESS_STATE_FILE));
  if (renewal === null || !Number.isFinite(renewal.sentAtMs)) throw new Error('no renewal recorded');
  return renewal.sentAtMs;
}

async function storedDesiredState(id: string): Promise<string> {
  const state = JSON.parse(await readFile(path.join(dir(), 'guests', id, 'state.json'), 'utf8')) as {
    desired: string;
  };
  return state.desired;
}

describe('self-fencing of a QEMU agent', () => {
  it('reattaches within the deadline, fences past it at startup, and kills QEMU before the lease can expire', async () => {
    const spec = testSpec();

    // Restarted within the deadline: the QEMU is the same, as without fencing.
    let agent = await startQemuAgent(LONG_TTL_S);
    await ok(agent, 'PUT', `/v1/guests/${spec.id}`, spec);
    const first = await startGuest(agent, spec.id);
    await agent.agent.stop({ leaveGuests: true });
    agent = await startQemuAgent(LONG_TTL_S);
    const reattached = await guestOf(agent, spec.id);
    expect(reattached).toMatchObject({ status: 'running', pid: first });
    expect(logs.some((line) => line.startsWith('self-fencing at startup not needed'))).toBe(true);

    // Restarted past the deadline (of the shorter TTL the new agent runs with): the leftover QEMU is killed.
    await agent.agent.stop({ leaveGuests: true });
    const shortDeadlineMs = fencingDeadlineMs(SHORT_TTL_S);
    await sleep(Math.max(0, (await lastRenewalSentAt()) + shortDeadlineMs + 200 - Date.now()));
    expect(await processAlive(first)).toBe(true);
    agent = await startQemuAgent(SHORT_TTL_S);
    expect(await processAlive(first)).toBe(false);
    expect(await guestOf(agent, spec.id)).toMatchObject({ status: 'stopped', pid: null });
    expect(await storedDesiredState(spec.id)).toBe('stopped');
    expect(logs.some((line) => line.startsWith('self-fencing at startup: '))).toBe(true);
    expect(logs).toContain(`guest ${spec.id}: killed QEMU ${first} left running (fenced at startup)`);

    // etcd freezes: the QEMU is SIGKILLed before the lease can expire, and stays stopped.
    const second = await startGuest(agent, spec.id);
    const key = hostHealthKey(prefix, agent.agent.hostId);
    const firstLease = await leaseOf(key);
    await sleep(SHORT_TTL_S * 500);
    process.kill(etcd.process.pid, 'SIGSTOP');
    etcdFrozen = true;
    const frozenAt = Date.now();
    const goneAt = await eventually(
      'the QEMU to be killed',
      async () => ((await processAlive(second)) ? undefined : Date.now()),
      2 * SHORT_TTL_S * 1000,
      20,
    );
    const sentAt = await lastRenewalSentAt();
    expect(sentAt).toBeLessThanOrEqual(frozenAt);
    expect(goneAt - sentAt).toBeLessThan(SHORT_TTL_S * 1000);
    expect(goneAt - sentAt).toBeGreaterThanOrEqual(shortDeadlineMs - 50);
    expect(await guestOf(agent, spec.id)).toMatchObject({ status: 'stopped', pid: null });
    expect(await storedDesiredState(spec.id)).toBe('stopped');

    await sleep(Math.max(0, sentAt + SHORT_TTL_S * 1000 + 1_000 - Date.now()));
    process.kill(etcd.process.pid, 'SIGCONT');
    etcdFrozen = false;
    await eventually(
      'the key under a new lease',
      async () => {
        const lease = await leaseOf(key);
        return lease !== null && lease !== firstLease ? lease : undefined;
      },
      15_000,
    );
    expect(await guestOf(agent, spec.id)).toMatchObject({ status: 'stopped', pid: null });
    expect(logs.some((line) => line.startsWith('fencing: SIGKILL sent to 1 QEMU process(es)'))).toBe(true);
    await agent.agent.stop();
  });
});

/** As the API does before it turns the host's auto_migrate_on_host_down on: fencing pays only then. */
async function armFencing(url: string): Promise<void> {
  const res = await fetch(`${url}/v1/fencing`, {
    method: 'PUT',
    headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
    body: JSON.stringify({ armed: true }),
  });
  if (!res.ok) throw new Error(`arming the agent's fencing: ${res.status} ${await res.text()}`);
}
