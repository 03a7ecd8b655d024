import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { alertScheduleId } from '../../domain/workflow-ids.ts';
import { startMiniStack, TEST_TIMINGS, type MiniStack } from '../helpers/mini-stack.ts';
import { createRunningServer, type ServerBody } from '../helpers/migrations.ts';
import { waitFor } from '../helpers/wait.ts';

interface PlanBody {
  alerted: { hostName: string; value: number }[];
  host_after: Record<string, number>;
  names: { hosts: Record<string, string> };
}

/**
 * The whole loop on real QEMU: two guests that dirty memory make their host busy (the agent measures their
 * QEMU processes' CPU and writes it to InfluxDB), a cpu rule crosses, the alert cycle moves one of them off.
 */
describe('an alert rule moves a real QEMU guest off a busy host', () => {
  let stack: MiniStack;

  beforeAll(async () => {
    stack = await startMiniStack({
      // Two CPUs each, as many as the two 1-vCPU guests: the host's share is their mean and never reaches the
      // 100 % cap (with one CPU two busy TCG guests capped it, and a guest then scored past any threshold below).
      hosts: [
        { name: 'qa1', driver: 'qemu', cpus: 2 },
        { name: 'qa2', driver: 'qemu', cpus: 2 },
      ],
      metrics: { database: `alerts_qemu_${randomBytes(4).toString('hex')}`, intervalSeconds: 1 },
      alertCycleTimings: { lockLeaseMs: 30_000, lockRenewIntervalMs: 5_000, migration: TEST_TIMINGS },
    });
  }, 240_000);
  afterAll(async () => stack?.stop());

  it('crosses the threshold and moves one guest to the idle host', async () => {
    for (const name of ['busy-a', 'busy-b']) {
      await createRunningServer(stack, { name, host: 'qa1', memoryMb: 128, dirtyRateMibs: 8 });
    }
    // Measure the host's load first, then set the threshold between one guest's share and two guests'.
    const probe = await stack.api('POST', '/v1/migration-alerts', {
      name: 'probe',
      metric: 'cpu.usage_active.gt',
      threshold: 1,
      period: '10s',
      source_hosts: ['qa1'],
      enabled: false,
    });
    expect(probe.status).toBe(201);
    const busy = await waitFor(
      'qa1 measured busy over a whole period',
      async () => {
        const plan = (await stack.api<PlanBody>('POST', '/v1/migration-alerts/probe/plan')).body;
        const qa1 = plan.alerted.find((a) => a.hostName === 'qa1');
        return qa1 && qa1.value > 5 ? qa1.value : null;
      },
      { timeoutMs: 60_000 },
    );
    await stack.api('DELETE', '/v1/migration-alerts/probe');

    const threshold = Math.round(busy * 0.75 * 100) / 100;
    const rule = await stack.api('POST', '/v1/migration-alerts', {
      name: 'qemu-cpu',
      metric: 'cpu.usage_active.gt',
      threshold,
      period: '10s',
      source_hosts: ['qa1'],
    });
    expect(rule.status).toBe(201);
    await stack.temporal.schedule.getHandle(alertScheduleId('qemu-cpu')).trigger();

    const outcome = await waitFor(
      'a migrate_success or migrate_fail event',
      async () => {
        const { events } = (
          await stack.api<{ events: { action: string; notes: string }[] }>(
            'GET',
            '/v1/migration-alerts/qemu-cpu/events',
          )
        ).body;
        return events.find((e) => e.action === 'migrate_success' || e.action === 'migrate_fail') ?? null;
      },
      { timeoutMs: 180_000 },
    ).catch(async (err: unknown) => {
      console.log(
        JSON.stringify((await stack.api('GET', '/v1/migration-alerts/qemu-cpu/events')).body, null, 1),
      );
      console.log(
        JSON.stringify((await stack.api('POST', '/v1/migration-alerts/qemu-cpu/plan')).body, null, 1),
      );
      throw err;
    });
    expect(outcome.action, outcome.notes).toBe('migrate_success');
    const servers = await Promise.all(
      ['busy-a', 'busy-b'].map(
        async (name) => (await stack.api<ServerBody>('GET', `/v1/servers/${name}`)).body,
      ),
    );
    expect(servers.map((s) => s.host.name).sort()).toEqual(['qa1', 'qa2']);
    expect(servers.every((s) => s.status === 'running')).toBe(true);
    // Its own waits add up to more than the suite's 120 s default: up to a minute to measure the load, three to
    // migrate under TCG on a loaded machine.
  }, 300_000);
});
