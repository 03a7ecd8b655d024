import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { alertScheduleId } from '../../domain/workflow-ids.ts';
import { startMiniStack, TEST_TIMINGS, type MiniStack } from '../helpers/mini-stack.ts';
import { createRunningServer, type ServerBody } from '../helpers/migrations.ts';
import { alertEvents } from '../helpers/alerts.ts';
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
    // The rule's threshold sits between one guest's share and two guests' as measured now. Other tests share the
    // machine's CPUs, so the TCG guests' load moves with theirs: while no batch has started, measure again and
    // move the threshold with it.
    const probe = await stack.api('POST', '/v1/migration-alerts', {
      name: 'probe',
      metric: 'cpu.usage_active.gt',
      threshold: 1,
      period: '10s',
      source_hosts: ['qa1'],
      enabled: false,
    });
    expect(probe.status).toBe(201);
    const measurements: number[] = [];
    const measureQa1 = () =>
      waitFor(
        'qa1 measured busy over a whole period',
        async () => {
          const plan = (await stack.api<PlanBody>('POST', '/v1/migration-alerts/probe/plan')).body;
          const qa1 = plan.alerted.find((a) => a.hostName === 'qa1');
          return qa1 && qa1.value > 5 ? qa1.value : null;
        },
        { timeoutMs: 60_000 },
      );
    const batchStarted = async () =>
      (await alertEvents(stack, 'qemu-cpu')).some((e) =>
        ['migrating', 'migrate_success', 'migrate_fail'].includes(e.action),
      );
    const deadline = Date.now() + 180_000;
    while (Date.now() < deadline) {
      const busy = await measureQa1();
      measurements.push(busy);
      const threshold = Math.round(busy * 0.75 * 100) / 100;
      const rule =
        measurements.length === 1
          ? await stack.api('POST', '/v1/migration-alerts', {
              name: 'qemu-cpu',
              metric: 'cpu.usage_active.gt',
              threshold,
              period: '10s',
              source_hosts: ['qa1'],
            })
          : await stack.api('PATCH', '/v1/migration-alerts/qemu-cpu', { threshold });
      expect(rule.status).toBeLessThan(300);
      await stack.temporal.schedule.getHandle(alertScheduleId('qemu-cpu')).trigger();
      const started = await waitFor('a batch', batchStarted, { timeoutMs: 20_000 }).catch(() => false);
      if (started) break;
    }
    // One batch is the test: no later cycle may start another that the stack's stop would have to wait for.
    await stack.api('PATCH', '/v1/migration-alerts/qemu-cpu', { enabled: false });
    await stack.api('DELETE', '/v1/migration-alerts/probe');

    const outcome = await waitFor(
      'a migrate_success or migrate_fail event',
      async () =>
        (await alertEvents(stack, 'qemu-cpu')).find(
          (e) => e.action === 'migrate_success' || e.action === 'migrate_fail',
        ) ?? null,
      { timeoutMs: 180_000 },
    ).catch(async (err: unknown) => {
      // In the error itself, so that a CI log that keeps only its tail still shows why.
      const events = (await alertEvents(stack, 'qemu-cpu')).map((e) => `${e.action}: ${e.notes}`);
      const plan = (await stack.api('POST', '/v1/migration-alerts/qemu-cpu/plan')).body;
      throw new Error(
        `${String(err)}; qa1 measured ${JSON.stringify(measurements)}; events ${JSON.stringify(events)}; plan now ${JSON.stringify(plan)}`,
      );
    });
    expect(outcome.action, outcome.notes).toBe('migrate_success');
    const servers = await Promise.all(
      ['busy-a', 'busy-b'].map(
        async (name) => (await stack.api<ServerBody>('GET', `/v1/servers/${name}`)).body,
      ),
    );
    expect(servers.map((s) => s.host.name).sort()).toEqual(['qa1', 'qa2']);
    expect(servers.every((s) => s.status === 'running')).toBe(true);
    // Its own waits add up to more than the suite's 120 s default: up to three minutes to see the host cross
    // under a moving load, three to migrate under TCG on a loaded machine.
  }, 480_000);
});
