import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startMiniStack, type MiniStack } from '../helpers/mini-stack.ts';
import {
  createRunningServer,
  migrateToEnd,
  type MigrationBody,
  type ServerBody,
} from '../helpers/migrations.ts';
import { waitFor } from '../helpers/wait.ts';

interface HostEvent {
  action: string;
  notes: string;
  data: Record<string, unknown>;
}

const GUESTS = ['mq-a', 'mq-b', 'mq-c'];

/** Maintenance on real QEMU: a host emptied under KubeVirt's limits 5/2/2, each guest alive on its new host. */
describe('maintenance empties a QEMU host under the parallel limits', () => {
  let stack: MiniStack;

  beforeAll(async () => {
    stack = await startMiniStack({
      hosts: [
        { name: 'mq1', driver: 'qemu' },
        { name: 'mq2', driver: 'qemu' },
        { name: 'mq3', driver: 'qemu' },
      ],
    });
    const limits = await stack.api('PUT', '/v1/migration-config', {
      parallelMigrationsPerCluster: 5,
      parallelOutboundMigrationsPerNode: 2,
      parallelInboundMigrationsPerNode: 2,
    });
    expect(limits.status).toBe(200);
  }, 120_000);
  afterAll(async () => stack?.stop());

  const server = async (name: string) => (await stack.api<ServerBody>('GET', `/v1/servers/${name}`)).body;

  it('moves every guest off, each running with an advancing heartbeat; exit brings the host back', async () => {
    for (const name of GUESTS) await createRunningServer(stack, { name, host: 'mq1', memoryMb: 128 });
    expect((await stack.api('POST', '/v1/hosts/mq1/maintenance')).status).toBe(202);
    const done = await waitFor(
      'the evacuation to complete',
      async () =>
        (await stack.api<{ items: HostEvent[] }>('GET', '/v1/hosts/mq1/events')).body.items.find(
          (e) => e.action === 'evacuation_completed',
        ) ?? null,
      { timeoutMs: 240_000 },
    );
    expect(done.notes).toBe('host mq1: 3 guest(s) moved, 0 failed, 0 could not move; the host is empty');
    for (const name of GUESTS) {
      const before = await server(name);
      expect(before.status).toBe('running');
      expect(before.host.name).not.toBe('mq1');
      await waitFor(`${name}'s heartbeat advancing on ${before.host.name}`, async () => {
        const now = await server(name);
        return (now.live?.heartbeat?.counter ?? 0) > (before.live?.heartbeat?.counter ?? 0) ? now : null;
      });
    }
    const { items: migrations } = (
      await stack.api<{ items: (MigrationBody & { trigger: string })[] }>('GET', '/v1/migrations?host=mq1')
    ).body;
    expect(migrations).toHaveLength(3);
    expect(migrations.every((m) => m.trigger === 'maintenance' && m.phase === 'completed')).toBe(true);
    // Three moves out of one host through two outbound slots: one waited its turn.
    expect(migrations.filter((m) => m.timings.queued !== undefined).length).toBeGreaterThanOrEqual(1);

    expect((await stack.api<{ status: string }>('DELETE', '/v1/hosts/mq1/maintenance')).body.status).toBe(
      'online',
    );
    const back = await migrateToEnd(stack, 'mq-a', { prefer_host: 'mq1' }, 180_000);
    expect(back.phase, back.error ?? '').toBe('completed');
    expect((await server('mq-a')).host.name).toBe('mq1');
  }, 480_000);
});
