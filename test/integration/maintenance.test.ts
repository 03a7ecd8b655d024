import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EVACUATION_PRIORITY_LABEL } from '../../domain/evacuation.ts';
import { recordLatestHistory } from '../helpers/histories.ts';
import { startMiniStack, type MiniStack } from '../helpers/mini-stack.ts';
import { createRunningServer, type MigrationBody, type ServerBody } from '../helpers/migrations.ts';
import { waitFor } from '../helpers/wait.ts';

interface HostEvent {
  action: string;
  notes: string;
  data: Record<string, unknown>;
}
interface Outcome {
  name: string;
  kind: string;
  outcome: string;
  destination: string | null;
  reason: string | null;
}

/**
 * Host maintenance (oVirt's "maintenance mode", Nova's evacuation of a host): out of scheduling at once, running
 * guests live-migrate, stopped ones move cold, all under the parallel limits (queued, not failed); what cannot
 * move says why; exit returns the host to scheduling.
 */
describe('host maintenance and evacuation, on sim hosts', () => {
  let stack: MiniStack;

  beforeAll(async () => {
    stack = await startMiniStack({ hosts: ['m1', 'm2', 'm3', 'm4'].map((name) => ({ name })) });
    // KubeVirt's parallel limits 5 / 2 / 2: one host's 2 outbound slots make the rest queue.
    const limits = await stack.api('PUT', '/v1/migration-config', {
      parallelMigrationsPerCluster: 5,
      parallelOutboundMigrationsPerNode: 2,
      parallelInboundMigrationsPerNode: 2,
    });
    expect(limits.status).toBe(200);
  });
  afterAll(async () => stack?.stop());

  const server = async (name: string) => (await stack.api<ServerBody>('GET', `/v1/servers/${name}`)).body;
  const hostEvents = async (host: string) =>
    (await stack.api<{ items: HostEvent[] }>('GET', `/v1/hosts/${host}/events`)).body.items;
  const hostStatus = async (host: string) =>
    (await stack.api<{ status: string }>('GET', `/v1/hosts/${host}`)).body.status;

  it('empties a host: live for running guests, cold for stopped ones (local disks copied), queued under the limits, priority first', async () => {
    for (const name of ['mv-a', 'mv-b', 'mv-c']) {
      await createRunningServer(stack, { name, host: 'm1', memoryMb: 512, dirtyRateMibs: 4 });
    }
    await createRunningServer(stack, {
      name: 'mv-vip',
      host: 'm1',
      memoryMb: 512,
      labels: { [EVACUATION_PRIORITY_LABEL]: '10' },
    });
    await createRunningServer(stack, { name: 'mv-off', host: 'm1', memoryMb: 256 });
    await createRunningServer(stack, {
      name: 'mv-local',
      host: 'm1',
      memoryMb: 256,
      disks: [{ id: 'root', sizeMb: 64, storage: 'local', cache: 'none' }],
    });
    for (const name of ['mv-off', 'mv-local']) {
      expect((await stack.api('POST', `/v1/servers/${name}/stop`)).status).toBe(202);
      await waitFor(`${name} ready`, async () => ((await server(name)).status === 'ready' ? 1 : null));
    }

    const entered = await stack.api<{ status: string }>('POST', '/v1/hosts/m1/maintenance');
    expect(entered.status).toBe(202);
    expect(entered.body.status).toBe('maintenance');
    const done = await waitFor(
      'the evacuation to complete',
      async () => (await hostEvents('m1')).find((e) => e.action === 'evacuation_completed') ?? null,
      { timeoutMs: 120_000 },
    );
    const outcomes = done.data.outcomes as Outcome[];
    const by = (name: string) => outcomes.find((o) => o.name === name);
    for (const name of ['mv-a', 'mv-b', 'mv-c', 'mv-vip']) {
      expect(by(name)).toMatchObject({ kind: 'live', outcome: 'moved' });
    }
    expect(by('mv-off')).toMatchObject({ kind: 'cold', outcome: 'moved' });
    // A stopped guest's local disk is copied to its new host.
    expect(by('mv-local')).toMatchObject({ kind: 'cold', outcome: 'moved' });
    expect(done.notes).toBe('host m1: 6 guest(s) moved, 0 failed, 0 could not move; the host is empty');

    for (const name of ['mv-a', 'mv-b', 'mv-c', 'mv-vip']) {
      expect(await server(name)).toMatchObject({ status: 'running' });
      expect((await server(name)).host.name).not.toBe('m1');
    }
    for (const name of ['mv-off', 'mv-local']) {
      expect((await server(name)).status).toBe('ready');
      expect((await server(name)).host.name).not.toBe('m1');
    }

    const { items: migrations } = (
      await stack.api<{
        items: (MigrationBody & { trigger: string; guest: { name: string }; requestedAt: string })[];
      }>('GET', '/v1/migrations?host=m1')
    ).body;
    expect(migrations.every((m) => m.trigger === 'maintenance' && m.phase === 'completed')).toBe(true);
    // Six moves through two outbound slots: some waited their turn, none failed for it.
    expect(migrations.some((m) => m.timings.queued !== undefined)).toBe(true);
    // The highest priority is recorded, and so asks for its slot, first.
    const oldestFirst = [...migrations].sort((a, b) =>
      String(a.requestedAt).localeCompare(String(b.requestedAt)),
    );
    expect(oldestFirst[0]?.guest.name).toBe('mv-vip');
    await recordLatestHistory(stack, 'evacuateHost', 'evacuate-host.json');
  });

  it('never targets a host in maintenance, and exit returns it to scheduling', async () => {
    expect(await hostStatus('m1')).toBe('maintenance');
    await createRunningServer(stack, { name: 'mv-next', host: 'm2', memoryMb: 256 });
    const refused = await stack.api<{ error: { failures: { name: string; message: string }[] } }>(
      'POST',
      '/v1/servers/mv-next/live-migrate',
      { prefer_host: 'm1' },
    );
    expect(refused.status).toBe(422);
    expect(JSON.stringify(refused.body.error.failures)).toContain('in maintenance');

    const exited = await stack.api<{ status: string }>('DELETE', '/v1/hosts/m1/maintenance');
    expect(exited.status).toBe(200);
    expect(exited.body.status).toBe('online');
    const back = await stack.api<{ id: string }>('POST', '/v1/servers/mv-next/live-migrate', {
      prefer_host: 'm1',
    });
    expect(back.status).toBe(202);
    const actions = (await hostEvents('m1')).map((e) => e.action);
    expect(actions).toEqual(expect.arrayContaining(['maintenance_enter', 'maintenance_exit']));
  });

  it('answers an unknown host with a 404', async () => {
    expect((await stack.api('POST', '/v1/hosts/nowhere/maintenance')).status).toBe(404);
    expect((await stack.api('DELETE', '/v1/hosts/nowhere/maintenance')).status).toBe(404);
  });
});
