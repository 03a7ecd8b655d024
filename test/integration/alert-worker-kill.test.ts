import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { AlertCycleTimings } from '../../domain/alert-cycle.ts';
import type { LockHolder } from '../../domain/migration-lock.ts';
import { alertScheduleId, MIGRATION_LOCK_WORKFLOW_ID } from '../../domain/workflow-ids.ts';
import { lockHolderQuery } from '../../workflows/migration-lock-messages.ts';
import { startMiniStack, TEST_TIMINGS, type MiniStack } from '../helpers/mini-stack.ts';
import { alertEvents, busyHost, waitForAlertEvent } from '../helpers/alerts.ts';
import { waitFor } from '../helpers/wait.ts';
import { startWorkerProcess } from '../helpers/worker-process.ts';

const TIMINGS: AlertCycleTimings = {
  lockLeaseMs: 10_000,
  lockRenewIntervalMs: 1_000,
  migration: TEST_TIMINGS,
};
const database = `alerts_kill_${randomBytes(4).toString('hex')}`;

describe('a worker SIGKILLed in the middle of an alert batch', () => {
  let stack: MiniStack;
  const workers: ChildProcess[] = [];

  const events = (rule: string) => alertEvents(stack, rule);
  const waitForEvent = (rule: string, action: string) => waitForAlertEvent(stack, rule, action);
  const lockHolder = () =>
    stack.temporal.workflow
      .getHandle(MIGRATION_LOCK_WORKFLOW_ID)
      .query(lockHolderQuery) as Promise<LockHolder | null>;

  /** Two 4-vCPU guests at 100 % on an 8-core host; a rule past 60 on it, paused (the test triggers it). */
  async function busyHostWithRule(host: string, target: string) {
    await busyHost(stack, host);
    const rule = `${host}-cpu`;
    const created = await stack.api('POST', '/v1/migration-alerts', {
      name: rule,
      metric: 'cpu.usage_active.gt',
      threshold: 60,
      period: '10s',
      source_hosts: [host],
      target_hosts: [target],
      enabled: false,
    });
    expect(created.status).toBe(201);
    await waitFor(
      `${host} past 60 % over a whole period`,
      async () => {
        const plan = await stack.api<{ moves: unknown[] }>('POST', `/v1/migration-alerts/${rule}/plan`);
        return plan.body.moves.length > 0 ? true : null;
      },
      { timeoutMs: 60_000 },
    );
    return rule;
  }

  beforeAll(async () => {
    stack = await startMiniStack({
      hosts: ['hot1', 'cool1', 'hot2', 'cool2'].map((name) => ({ name, cpus: 8, memoryMb: 16_384 })),
      worker: false,
      metrics: { database, intervalSeconds: 1 },
      alertCycleTimings: TIMINGS,
    });
    workers.push(await startWorkerProcess(stack, { INFLUX_URL: inject('influxUrl'), INFLUX_DB: database }));
  }, 240_000);
  afterAll(async () => {
    for (const w of workers) w.kill('SIGKILL');
    await stack?.stop();
  });

  it('frees the migration lock by its lease, and the next batch takes it', async () => {
    const first = await busyHostWithRule('hot1', 'cool1');
    const next = await busyHostWithRule('hot2', 'cool2');
    // A slow copy keeps the first batch in the middle of its migration when the worker dies.
    await stack.api('PUT', '/v1/migration-config', { bandwidthPerMigration: '16Mi' });
    await stack.temporal.schedule.getHandle(alertScheduleId(first)).trigger();
    await waitForEvent(first, 'migrating');
    expect((await lockHolder())?.description).toContain(`rule ${first}`);

    workers[0]!.kill('SIGKILL');
    const killedAt = Date.now();
    await stack.api('PUT', '/v1/migration-config', {});
    await new Promise((resolve) => setTimeout(resolve, TIMINGS.lockLeaseMs + 2_000));
    workers.push(await startWorkerProcess(stack, { INFLUX_URL: inject('influxUrl'), INFLUX_DB: database }));

    await stack.temporal.schedule.getHandle(alertScheduleId(next)).trigger();
    await waitForEvent(next, 'migrating');
    expect((await events(next)).some((e) => e.action === 'skipped')).toBe(false);
    const holder = await lockHolder();
    // The new batch holds it (or has finished with it); the dead one never again.
    expect(holder === null || holder.description.includes(`rule ${next}`)).toBe(true);
    expect(Date.now() - killedAt).toBeGreaterThan(TIMINGS.lockLeaseMs);
  });
});
