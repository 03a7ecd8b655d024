import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { HostWatch } from '../../workers/host-watch.ts';
import { recordLatestHistory } from '../helpers/histories.ts';
import { startMiniStack, type MiniStack } from '../helpers/mini-stack.ts';
import { agentGuest, createRunningServer, type ServerBody } from '../helpers/migrations.ts';
import { waitFor } from '../helpers/wait.ts';

interface HostEvent {
  action: string;
  notes: string;
  data: Record<string, unknown>;
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

  const server = async (name: string) => (await stack.api<ServerBody>('GET', `/v1/servers/${name}`)).body;
  const hostEvents = async (host: string) =>
    (await stack.api<{ events: HostEvent[] }>('GET', `/v1/hosts/${host}/events`)).body.events;
  const flags = (host: string, body: Record<string, string>) =>
    stack.api('POST', `/v1/hosts/${host}/auto-migrate-on-host-down`, body);
  /** The host dies: no more keepalives (the lease expires) and its in-memory sim guests are gone. */
  const kill = (host: string) => stack.agents.get(host)!.stop({ leaveGuests: true });
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

    const moved = await waitFor(
      'hd-shared running elsewhere',
      async () => {
        const s = await server('hd-shared');
        return s.status === 'running' && s.host.name !== 'hd1' ? s : null;
      },
      { timeoutMs: 60_000 },
    );
    expect((await agentGuest(stack, moved.host.name, shared.id)).body.status).toBe('running');
    await waitFor('the rescue recorded on the host', async () =>
      (await hostEvents('hd1')).some((e) => e.action === 'host_down_auto_migrate_success'),
    );
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
      const { migrations } = (
        await stack.api<{ migrations: { kind: string; trigger: string; phase: string }[] }>(
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
