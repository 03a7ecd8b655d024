import { WorkflowNotFoundError } from '@temporalio/client';
import { Etcd3 } from 'etcd3';
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from 'vitest';
import { hostHealthKey, hostWatchRevisionKey } from '../../domain/config.ts';
import { hostDownWorkflowId } from '../../domain/workflow-ids.ts';
import { HostWatch } from '../../workers/host-watch.ts';
import { recordLatestHistory } from '../helpers/histories.ts';
import { startMiniStack, TEST_TIMINGS, type MiniStack } from '../helpers/mini-stack.ts';
import { agentGuest, createRunningServer, type ServerBody } from '../helpers/migrations.ts';
import { waitFor } from '../helpers/wait.ts';

interface HostEvent {
  action: string;
  notes: string;
  data: Record<string, unknown>;
}

/** What every test here reads and does through a stack's API and agents. */
function helpersOf(current: () => MiniStack) {
  const server = async (name: string) => (await current().api<ServerBody>('GET', `/v1/servers/${name}`)).body;
  const hostEvents = async (host: string) =>
    (await current().api<{ items: HostEvent[] }>('GET', `/v1/hosts/${host}/events`)).body.items;
  const flags = (host: string, body: Record<string, string>) =>
    current().api('POST', `/v1/hosts/${host}/auto-migrate-on-host-down`, body);
  /** The host dies: no more keepalives (the lease expires) and its in-memory sim guests are gone. */
  const kill = (host: string) => current().agents.get(host)!.stop({ leaveGuests: true });
  /** Cloudpods records one host_down_auto_migrate per loss: who moves, who stays and why. */
  const decisionsOf = async (host: string) => {
    const summary = await waitFor(
      `${host} confirmed down`,
      async () => (await hostEvents(host)).find((e) => e.action === 'host_down_auto_migrate') ?? null,
      { timeoutMs: 30_000 },
    );
    type Entry = { name: string; reason: string };
    const { moving, staying } = summary.data as { moving: Entry[]; staying: Entry[] };
    return [...moving.map((e) => ({ ...e, move: true })), ...staying.map((e) => ({ ...e, move: false }))];
  };
  /** The rescued guest runs on another host, on its agent too, and the host's events say the rescue succeeded. */
  const rescuedOffHost = async (name: string, deadHost: string, guestId: string) => {
    const moved = await waitFor(
      `${name} running elsewhere`,
      async () => {
        const s = await server(name);
        return s.status === 'running' && s.host.name !== deadHost ? s : null;
      },
      { timeoutMs: 60_000 },
    );
    expect((await agentGuest(current(), moved.host.name, guestId)).body.status).toBe('running');
    await waitFor('the rescue recorded on the host', async () =>
      (await hostEvents(deadHost)).some((e) => e.action === 'host_down_auto_migrate_success'),
    );
    return moved;
  };
  return { server, hostEvents, flags, kill, decisionsOf, rescuedOffHost };
}

/**
 * A host's lease expires: the watcher starts hostDown, which confirms it, waits out the fencing, and restarts
 * the guests the resilience policy and the host's flags allow elsewhere (sim hosts, 2 s leases).
 */
describe('host down: detection over etcd and rescue by policy and flags', () => {
  let stack: MiniStack;

  // A second worker process's watcher: both see every change, Temporal runs each hostDown once.
  let secondWatch: HostWatch;
  const secondWatchLog: string[] = [];

  beforeAll(async () => {
    stack = await startMiniStack({
      hosts: ['hd1', 'hd2', 'hd3', 'hd4'].map((name) => ({ name, ttlSeconds: 2 })),
      hostWatch: { fencingMarginMs: 1_000 },
    });
    secondWatch = new HostWatch({
      etcd: { endpoints: inject('etcdEndpoints'), prefix: stack.etcdPrefix },
      temporal: stack.temporal,
      taskQueue: stack.taskQueue,
      log: (line) => secondWatchLog.push(line),
      timings: { fencingMarginMs: 1_000 },
    });
    await secondWatch.start();
  });
  afterAll(async () => {
    await secondWatch?.stop();
    await stack?.stop();
  });

  const { server, hostEvents, flags, kill, decisionsOf, rescuedOffHost } = helpersOf(() => stack);

  it('restarts a running shared-storage guest elsewhere; a local-disk and a stopped guest stay, saying why', async () => {
    expect((await flags('hd1', { auto_migrate_on_host_down: 'enable' })).status).toBe(200);
    const shared = await createRunningServer(stack, { name: 'hd-shared', host: 'hd1', memoryMb: 512 });
    await createRunningServer(stack, {
      name: 'hd-local',
      host: 'hd1',
      memoryMb: 256,
      disks: [{ id: 'root', sizeMb: 64, storage: 'local', cache: 'none' }],
    });
    await createRunningServer(stack, { name: 'hd-stopped', host: 'hd1', memoryMb: 256 });
    expect((await stack.api('POST', '/v1/servers/hd-stopped/stop')).status).toBe(202);
    await waitFor('hd-stopped ready', async () =>
      (await server('hd-stopped')).status === 'ready' ? 1 : null,
    );

    await kill('hd1');
    const decisions = await decisionsOf('hd1');
    expect(decisions.find((d) => d.name === 'hd-shared')).toMatchObject({ move: true });
    expect(decisions.find((d) => d.name === 'hd-local')).toMatchObject({
      move: false,
      reason: 'local disk root cannot be rescued',
    });
    expect(decisions.find((d) => d.name === 'hd-stopped')?.move).toBe(false);

    await rescuedOffHost('hd-shared', 'hd1', shared.id);
    const types = (await hostEvents('hd1')).map((e) => e.action);
    expect(types).toEqual(
      expect.arrayContaining([
        'host_lease_lost',
        'host_down',
        'host_down_auto_migrate',
        'host_down_auto_migrate_start',
        'host_down_auto_migrate_success',
      ]),
    );
    const rescue = await waitFor('the rescue migration completed', async () => {
      const { items: migrations } = (
        await stack.api<{ items: { kind: string; trigger: string; phase: string }[] }>(
          'GET',
          '/v1/migrations?guest=hd-shared',
        )
      ).body;
      return migrations[0]?.phase === 'completed' ? migrations[0] : null;
    });
    expect(rescue).toMatchObject({ kind: 'rescue', trigger: 'host-down' });
    expect((await server('hd-local')).host.name).toBe('hd1');
    expect((await server('hd-stopped')).host.name).toBe('hd1');
    await recordLatestHistory(stack, 'hostDown', 'host-down-rescued.json');
    const runs: string[] = [];
    for await (const run of stack.temporal.workflow.list({
      query: `WorkflowType='hostDown' AND TaskQueue='${stack.taskQueue}'`,
    })) {
      runs.push(run.workflowId);
    }
    expect(runs).toHaveLength(1);
  });

  it('moves nothing when the host flag is off (Cloudpods default), saying so', async () => {
    await createRunningServer(stack, { name: 'hd-noflag', host: 'hd2', memoryMb: 256 });
    await kill('hd2');
    const decisions = await decisionsOf('hd2');
    expect(decisions.find((d) => d.name === 'hd-noflag')).toMatchObject({
      move: false,
      reason: 'host flag auto_migrate_on_host_down is off',
    });
    expect(decisions.every((d) => !d.move)).toBe(true);
    expect((await server('hd-noflag')).host.name).toBe('hd2');
  });

  it('moves only highly available guests under the ha-only resilience policy', async () => {
    expect((await stack.api('PUT', '/v1/migration-config', { resiliencePolicy: 'ha-only' })).status).toBe(
      200,
    );
    expect((await flags('hd3', { auto_migrate_on_host_down: 'enable' })).status).toBe(200);
    await createRunningServer(stack, { name: 'hd-ha', host: 'hd3', memoryMb: 256, highlyAvailable: true });
    await createRunningServer(stack, { name: 'hd-plain', host: 'hd3', memoryMb: 256 });
    await kill('hd3');
    const decisions = await decisionsOf('hd3');
    expect(decisions.find((d) => d.name === 'hd-ha')?.move).toBe(true);
    expect(decisions.find((d) => d.name === 'hd-plain')).toMatchObject({
      move: false,
      reason: 'policy ha-only and guest is not highly available',
    });
    await waitFor(
      'hd-ha running elsewhere',
      async () => {
        const s = await server('hd-ha');
        return s.status === 'running' && s.host.name !== 'hd3' ? s : null;
      },
      { timeoutMs: 60_000 },
    );
    expect((await server('hd-plain')).host.name).toBe('hd3');
    await stack.api('PUT', '/v1/migration-config', {});
  });

  it('does not take a graceful agent shutdown for a host failure (no rescue without auto_migrate_on_host_shutdown)', async () => {
    expect((await flags('hd4', { auto_migrate_on_host_down: 'enable' })).status).toBe(200);
    await createRunningServer(stack, { name: 'hd-graceful', host: 'hd4', memoryMb: 256 });
    await stack.agents.get('hd4')!.stop();
    const decisions = await decisionsOf('hd4');
    expect(decisions.find((d) => d.name === 'hd-graceful')).toMatchObject({
      move: false,
      reason:
        'a graceful agent shutdown is not a host failure: host flag auto_migrate_on_host_shutdown is off',
    });
    const down = (await hostEvents('hd4')).find((e) => e.action === 'host_down');
    expect(down?.data).toMatchObject({ cause: 'shutdown' });
    expect((await server('hd-graceful')).host.name).toBe('hd4');
  });
});

/**
 * Every watcher is down when a host's lease expires: the next watch to start resumes from the revision the last
 * one handled (kept in etcd), so the host's hostDown still runs, once.
 */
describe('host watch: resumes from the last handled revision after every watcher was down', () => {
  let stack: MiniStack;
  let etcd: Etcd3;
  const watches: HostWatch[] = [];
  const { flags, kill, decisionsOf, rescuedOffHost } = helpersOf(() => stack);

  beforeAll(async () => {
    // No hostWatch: the tests start and stop every watcher themselves.
    stack = await startMiniStack({ hosts: ['hr1', 'hr2', 'hr3'].map((name) => ({ name, ttlSeconds: 2 })) });
    etcd = new Etcd3({ hosts: inject('etcdEndpoints') });
  });
  // Each test starts its watchers; none runs between tests (as when every worker is down).
  afterEach(() => Promise.all(watches.splice(0).map((w) => w.stop())));
  afterAll(async () => {
    etcd?.close();
    await stack?.stop();
  });

  const revisionKey = () => hostWatchRevisionKey(stack.etcdPrefix);
  const recorded = async () => {
    const value = await etcd.get(revisionKey()).string();
    return value === null ? null : BigInt(value);
  };
  const currentRevision = async () => BigInt((await etcd.get(revisionKey()).exec()).header.revision);
  const startWatch = async () => {
    const log: string[] = [];
    const watch = new HostWatch({
      etcd: { endpoints: inject('etcdEndpoints'), prefix: stack.etcdPrefix },
      temporal: stack.temporal,
      taskQueue: stack.taskQueue,
      log: (line) => log.push(line),
      timings: { fencingMarginMs: 1_000 },
      migrationTimings: TEST_TIMINGS,
    });
    watches.push(watch);
    await watch.start();
    return { watch, log };
  };
  /** The host's health key and the id its hostDown run gets (per host and lease), read while it lives. */
  const healthOf = async (host: string) => {
    const hostId = stack.agents.get(host)!.hostId;
    const key = hostHealthKey(stack.etcdPrefix, hostId);
    const [kv] = (await etcd.get(key).exec()).kvs;
    if (!kv) throw new Error(`${host} has no health key`);
    return { key, workflowId: hostDownWorkflowId(hostId, BigInt(kv.lease).toString(16)) };
  };
  const runExists = (workflowId: string) =>
    stack.temporal.workflow
      .getHandle(workflowId)
      .describe()
      .then(
        () => true,
        (err: unknown) => {
          if (err instanceof WorkflowNotFoundError) return false;
          throw err;
        },
      );
  it('with no revision recorded yet, watches from now and records where it starts', async () => {
    expect(await recorded()).toBeNull();
    const before = await currentRevision();
    const { log } = await startWatch();
    const base = await recorded();
    expect(base).not.toBeNull();
    expect(base! >= before).toBe(true);
    // From now: the agents' earlier registrations (new leases) are not replayed as returns.
    expect(log.filter((l) => l.includes('started'))).toEqual([]);

    const hr2 = await healthOf('hr2');
    await kill('hr2');
    expect(await decisionsOf('hr2')).toEqual([]);
    expect(log).toContain(`host watch: started ${hr2.workflowId}`);
    await waitFor('the delete recorded', async () => (await recorded())! > base!);
  });

  it('rescues a host lost while no watcher ran once one starts; a second watcher replaying it starts nothing', async () => {
    expect((await flags('hr1', { auto_migrate_on_host_down: 'enable' })).status).toBe(200);
    const guest = await createRunningServer(stack, { name: 'hr-shared', host: 'hr1', memoryMb: 256 });
    const before = (await recorded())!;
    const hr1 = await healthOf('hr1');
    await kill('hr1');
    await waitFor("hr1's lease to expire", async () => (await etcd.get(hr1.key).string()) === null);
    expect(await runExists(hr1.workflowId)).toBe(false);

    const first = await startWatch();
    const decisions = await decisionsOf('hr1');
    expect(decisions.find((d) => d.name === 'hr-shared')).toMatchObject({ move: true });
    expect(first.log).toContain(`host watch: started ${hr1.workflowId}`);
    await rescuedOffHost('hr-shared', 'hr1', guest.id);
    const handled = await waitFor('the first watcher to record the delete', async () => {
      const revision = (await recorded())!;
      return revision > before ? revision : null;
    });

    // A slower worker's write took the record back: the next watcher replays the delete, to no effect.
    await etcd.put(revisionKey()).value(before.toString());
    const second = await startWatch();
    await waitFor(
      'the second watcher to handle the replayed delete',
      async () => (await recorded())! >= handled,
    );
    expect(second.log.filter((l) => l.includes('started'))).toEqual([]);
    const runs: string[] = [];
    for await (const run of stack.temporal.workflow.list({
      query: `WorkflowType='hostDown' AND TaskQueue='${stack.taskQueue}' AND WorkflowId='${hr1.workflowId}'`,
    })) {
      runs.push(run.runId);
    }
    expect(runs).toHaveLength(1);
    const { items: migrations } = (
      await stack.api<{ items: { kind: string; trigger: string }[] }>('GET', '/v1/migrations?guest=hr-shared')
    ).body;
    expect(migrations).toEqual([expect.objectContaining({ kind: 'rescue', trigger: 'host-down' })]);
  });

  it('falls back to watching from now when etcd has compacted the recorded revision, saying so', async () => {
    const stale = (await recorded())!;
    await etcd.put(`/${stack.etcdPrefix}/test/filler`).value('history moves on');
    const now = await currentRevision();
    expect(now > stale + 1n).toBe(true);
    await etcd.kv.compact({ revision: now.toString(), physical: true });

    const { log } = await startWatch();
    expect(log.find((l) => l.includes('compacted'))).toMatch(
      new RegExp(`compacted its history past the recorded revision ${stale};.*watching from revision`),
    );
    expect((await recorded())! >= now).toBe(true);
    // And it watches from there.
    const hr3 = await healthOf('hr3');
    await kill('hr3');
    await decisionsOf('hr3');
    expect(log).toContain(`host watch: started ${hr3.workflowId}`);
  });
});
