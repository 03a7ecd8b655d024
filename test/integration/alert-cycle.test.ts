import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { ScheduleNotFoundError, ScheduleOverlapPolicy } from '@temporalio/client';
import { Context } from '@temporalio/activity';
import { historyToJSON } from '@temporalio/common/lib/proto-utils.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { reconcileAlertSchedules } from '../../api/alert-schedules.ts';
import { listMigrationAlerts } from '../../db/alert-store.ts';
import { listMigrations } from '../../db/migration-store.ts';
import type { AlertCycleTimings } from '../../domain/alert-cycle.ts';
import type { LockHolder } from '../../domain/migration-lock.ts';
import { alertScheduleId } from '../../domain/workflow-ids.ts';
import { lockHolderQuery } from '../../workflows/migration-lock-messages.ts';
import { startMiniStack, TEST_TIMINGS, type MiniStack } from '../helpers/mini-stack.ts';
import type { ServerBody } from '../helpers/migrations.ts';
import { alertEvents, busyHost as busyHostOf, waitForAlertEvent } from '../helpers/alerts.ts';
import { waitFor } from '../helpers/wait.ts';

const run = promisify(execFile);

const TIMINGS: AlertCycleTimings = {
  lockLeaseMs: 4_000,
  lockRenewIntervalMs: 1_000,
  migration: TEST_TIMINGS,
};
/** The shortest period a rule takes; its means then cover the last ten one-second samples. */
const PERIOD = '10s';

describe('alert cycles on real InfluxDB and Temporal with sim hosts', () => {
  let stack: MiniStack;

  const events = (rule: string) => alertEvents(stack, rule);
  const waitForEvent = (rule: string, action: string) => waitForAlertEvent(stack, rule, action);
  const serverHost = async (name: string) =>
    (await stack.api<ServerBody>('GET', `/v1/servers/${name}`)).body.host.name;
  const lockHolder = () =>
    stack.temporal.workflow
      .getHandle(stack.lockWorkflowId)
      .query(lockHolderQuery) as Promise<LockHolder | null>;
  const trigger = (rule: string) => stack.temporal.schedule.getHandle(alertScheduleId(rule)).trigger();
  const createRule = (body: Record<string, unknown>) => stack.api('POST', '/v1/migration-alerts', body);

  /** RECORD_HISTORIES=1: keep the longest closed cycle of the rule (or the lock's run) for the replay test. */
  async function recordHistory(workflowIdPrefix: string, file: string) {
    if (!process.env.RECORD_HISTORIES) return;
    let longest: { events?: unknown[] | null } | null = null;
    for await (const run of stack.temporal.workflow.list({ query: `TaskQueue = '${stack.taskQueue}'` })) {
      if (!run.workflowId.startsWith(workflowIdPrefix)) continue;
      if (run.type === 'alertCycle' && run.status.name !== 'COMPLETED') continue;
      const history = await stack.temporal.workflow.getHandle(run.workflowId, run.runId).fetchHistory();
      if (!longest || (history.events?.length ?? 0) > (longest.events?.length ?? 0)) longest = history;
    }
    if (!longest) throw new Error(`no run of ${workflowIdPrefix} to record`);
    await writeFile(
      path.join('test', 'histories', file),
      historyToJSON(longest as Parameters<typeof historyToJSON>[0]),
    );
  }

  const busyHost = (host: string) => busyHostOf(stack, host);

  /** The host's cpu mean over a period reads past 60 once its guests ran for a period. */
  async function waitUntilHot(host: string) {
    const rule = `probe-${host}`;
    expect(
      (
        await createRule({
          name: rule,
          metric: 'cpu.usage_active',
          threshold: 60,
          period: PERIOD,
          source_hosts: [host],
          enabled: false,
        })
      ).status,
    ).toBe(201);
    await waitFor(
      `${host} past 60 % over the period`,
      async () => {
        const plan = await stack.api<{ alerted: { hostName: string; value: number }[] }>(
          'POST',
          `/v1/migration-alerts/${rule}/plan`,
        );
        return plan.body.alerted.some((a) => a.hostName === host && a.value > 95) ? true : null;
      },
      { timeoutMs: 60_000 },
    );
    await stack.api('DELETE', `/v1/migration-alerts/${rule}`);
  }

  beforeAll(async () => {
    stack = await startMiniStack({
      hosts: ['hot1', 'hot2', 'hot3', 'hot4', 'cool1', 'cool2', 'cool3', 'spare'].map((name) => ({
        name,
        cpus: 8,
        memoryMb: 16_384,
      })),
      metrics: { database: `alerts_${randomBytes(4).toString('hex')}`, intervalSeconds: 1 },
      alertCycleTimings: TIMINGS,
    });
  }, 240_000);
  afterAll(async () => stack?.stop());

  it('refuses bad rules naming the field, and stores units as the seed writes them', async () => {
    const unknownGuest = await createRule({
      name: 'bad',
      metric: 'cpu.usage_active.gt',
      threshold: 60,
      source_guests: ['nope'],
    });
    expect(unknownGuest.status).toBe(400);
    expect(unknownGuest.body).toMatchObject({
      error: { field: 'source_guests', message: expect.stringContaining("'nope'") },
    });
    const badMetric = await createRule({ name: 'bad', metric: 'cpu.usage_active.lt', threshold: 60 });
    expect(badMetric.body).toMatchObject({ error: { field: 'metric' } });
    const badThreshold = await createRule({
      name: 'bad',
      metric: 'mem.available.lt',
      threshold: '2 potatoes',
    });
    expect(badThreshold.body).toMatchObject({ error: { field: 'threshold' } });
    const badPeriod = await createRule({
      name: 'bad',
      metric: 'cpu.usage_active',
      threshold: 60,
      period: '5 fortnights',
    });
    expect(badPeriod.body).toMatchObject({ error: { field: 'period' } });
    expect((await listMigrationAlerts(stack.db.db)).map((r) => r.name)).toEqual([]);

    const mem = await createRule({
      name: 'mem-low',
      metric: 'mem.available.lt',
      threshold: '2GiB',
      enabled: false,
    });
    expect(mem.status).toBe(201);
    expect(mem.body).toMatchObject({
      metric: 'mem.available',
      comparator: 'lt',
      threshold: 2 * 1024 ** 3,
      periodS: 300,
    });
    expect(
      (await createRule({ name: 'mem-low', metric: 'mem.available.lt', threshold: '1GiB' })).status,
    ).toBe(409);
    await stack.api('DELETE', '/v1/migration-alerts/mem-low');
  });

  it('owns a Temporal Schedule: created with the rule, paused with it, changed with it, deleted with it, repaired at start-up', async () => {
    const created = await createRule({
      name: 'sched',
      metric: 'cpu.usage_active.gt',
      threshold: 99,
      period: '2m',
    });
    expect(created.status).toBe(201);
    const handle = stack.temporal.schedule.getHandle('migration-alert-sched');
    let description = await handle.describe();
    expect(description.spec.intervals?.[0]?.every).toBe(120_000);
    expect(description.policies.overlap).toBe(ScheduleOverlapPolicy.SKIP);
    expect(description.state.paused).toBe(false);
    expect(description.state.note).toContain("migration alert 'sched'");
    expect(description.action).toMatchObject({ workflowType: 'alertCycle', taskQueue: stack.taskQueue });

    expect(
      (await stack.api('PATCH', '/v1/migration-alerts/sched', { enabled: false, period: '5m' })).status,
    ).toBe(200);
    description = await handle.describe();
    expect(description.state.paused).toBe(true);
    expect(description.spec.intervals?.[0]?.every).toBe(300_000);

    // Drift in both directions, repaired by what the API runs at start-up.
    await handle.delete();
    await stack.temporal.schedule.create({
      scheduleId: 'migration-alert-ghost',
      spec: { intervals: [{ every: '1h' }] },
      action: {
        type: 'startWorkflow',
        workflowType: 'alertCycle',
        args: [{ ruleId: 'gone' }],
        taskQueue: stack.taskQueue,
      },
      state: { paused: true },
    });
    const repair = await reconcileAlertSchedules(
      { temporal: stack.temporal, taskQueue: stack.taskQueue, cycleTimings: TIMINGS },
      await listMigrationAlerts(stack.db.db),
    );
    expect(repair.created).toEqual(['sched']);
    expect(repair.deleted).toContain('migration-alert-ghost');
    expect((await handle.describe()).state.paused).toBe(true);
    await expect(
      stack.temporal.schedule.getHandle('migration-alert-ghost').describe(),
    ).rejects.toBeInstanceOf(ScheduleNotFoundError);

    expect((await stack.api('DELETE', '/v1/migration-alerts/sched')).status).toBe(200);
    await expect(handle.describe()).rejects.toBeInstanceOf(ScheduleNotFoundError);
    expect((await stack.api('GET', '/v1/migration-alerts/sched')).status).toBe(404);
  });

  it("fires on a busy host and moves one guest off it, recording the seed's events; readable through vmctl", async () => {
    await busyHost('hot1');
    await waitUntilHot('hot1');
    const created = await createRule({
      name: 'hot1-cpu',
      metric: 'cpu.usage_active.gt',
      threshold: 60,
      period: PERIOD,
      source_hosts: ['hot1'],
      target_hosts: ['cool1'],
    });
    expect(created.status).toBe(201);
    await trigger('hot1-cpu');
    const migrating = await waitForEvent('hot1-cpu', 'migrating');
    const note = JSON.parse(migrating.notes) as Record<string, Record<string, unknown>>;
    expect(note.guest).toMatchObject({
      host: 'hot1',
      vcpu_count: 4,
      vmem_size: 512,
      score: expect.any(Number),
    });
    expect(note.guest!.score as number).toBeGreaterThan(43);
    expect(note.target_host).toMatchObject({ name: 'cool1', score: expect.any(Number) });
    await waitForEvent('hot1-cpu', 'migrate_success');
    const moved = note.guest!.name as string;
    expect(await serverHost(moved)).toBe('cool1');
    const rows = await listMigrations(stack.db.db);
    expect(rows.filter((m) => m.trigger === 'alert')).toHaveLength(1);
    await waitFor('the lock released', async () => ((await lockHolder()) === null ? true : null));

    // The next cycles leave it alone: hot1 is settling, then under the threshold.
    await trigger('hot1-cpu');
    await new Promise((r) => setTimeout(r, 3_000));
    expect((await listMigrations(stack.db.db)).filter((m) => m.trigger === 'alert')).toHaveLength(1);

    const cli = await run(
      process.execPath,
      [path.resolve('cli/bin.js'), 'monitor-migrationalert-event', 'hot1-cpu'],
      {
        env: { ...process.env, VMCTL_API_URL: stack.apiUrl, API_TOKEN: stack.apiToken },
      },
    );
    expect(cli.stdout).toMatch(/ops_time/);
    expect(cli.stdout).toMatch(/migrate_success/);
    expect(cli.stdout).toMatch(/migrating\s+\{"guest":/);
    await stack.api('PATCH', '/v1/migration-alerts/hot1-cpu', { enabled: false });
    await recordHistory('alert-cycle-hot1-cpu', 'alert-cycle-migrated.json');
  });

  it('runs one batch at a time: two rules firing together, the second records skipped naming the holder', async () => {
    await busyHost('hot2');
    await busyHost('hot3');
    await Promise.all([waitUntilHot('hot2'), waitUntilHot('hot3')]);
    for (const [rule, host, target] of [
      ['hot2-cpu', 'hot2', 'cool2'],
      ['hot3-cpu', 'hot3', 'cool3'],
    ] as const) {
      const created = await createRule({
        name: rule,
        metric: 'cpu.usage_active.gt',
        threshold: 60,
        period: PERIOD,
        source_hosts: [host],
        target_hosts: [target],
        // Paused: only the triggers below start cycles (a trigger runs on a paused schedule too).
        enabled: false,
      });
      expect(created.status).toBe(201);
    }
    await Promise.all([trigger('hot2-cpu'), trigger('hot3-cpu')]);
    let seen: unknown = null;
    const outcome = await waitFor('one batch and one skip', async () => {
      const [two, three] = [await events('hot2-cpu'), await events('hot3-cpu')];
      seen = { two, three };
      const skipped = [two, three].findIndex((list) => list.some((e) => e.action === 'skipped'));
      const migrated = [two, three].findIndex((list) => list.some((e) => e.action === 'migrate_success'));
      return skipped !== -1 && migrated !== -1 ? { skipped, migrated, lists: [two, three] } : null;
    }).catch(async (err: unknown) => {
      console.log(JSON.stringify(seen, null, 1));
      console.log(
        JSON.stringify((await stack.api('POST', '/v1/migration-alerts/hot2-cpu/plan')).body, null, 1),
      );
      for await (const r of stack.temporal.workflow.list({ query: `TaskQueue = '${stack.taskQueue}'` })) {
        console.log(r.workflowId, r.type, r.status.name);
        if (r.type === 'alertCycle') {
          const h = await stack.temporal.workflow.getHandle(r.workflowId, r.runId).fetchHistory();
          console.log(
            JSON.stringify(
              h.events?.map((e) => [
                e.eventType,
                e.activityTaskFailedEventAttributes?.failure?.message ??
                  e.workflowExecutionFailedEventAttributes?.failure?.message ??
                  '',
              ]),
            ),
          );
        }
      }
      throw err;
    });
    expect(outcome.skipped).not.toBe(outcome.migrated);
    const winner = ['hot2-cpu', 'hot3-cpu'][outcome.migrated]!;
    const skip = outcome.lists[outcome.skipped]!.find((e) => e.action === 'skipped')!;
    expect(skip.notes).toContain(`rule ${winner}`);
    expect(outcome.lists[outcome.skipped]!.some((e) => e.action === 'migrating')).toBe(false);
    const loser = ['hot2-cpu', 'hot3-cpu'][outcome.skipped]!;
    await recordHistory(`alert-cycle-${loser}`, 'alert-cycle-skipped.json');
  });

  it('frees the lock by its lease when the worker dies mid-batch; the next cycle runs', async () => {
    // The loser of the last test still has both busy guests, and its rule's target is still idle.
    const loser = (await events('hot2-cpu')).some((e) => e.action === 'skipped') ? 'hot2' : 'hot3';
    await busyHost('hot4');
    await waitUntilHot('hot4');
    const next = await createRule({
      name: 'hot4-cpu',
      metric: 'cpu.usage_active.gt',
      threshold: 60,
      period: PERIOD,
      source_hosts: ['hot4'],
      target_hosts: ['spare'],
      enabled: false,
    });
    expect(next.status).toBe(201);

    // A worker that stalls once the batch's migration is done, before the batch ends: it holds the lock.
    await stack.stopWorker();
    await stack.startWorker((activities) => ({
      ...activities,
      async recordAlertEvent(input) {
        if (input.event.type === 'migrate_success' || input.event.type === 'migrate_fail')
          await Context.current().sleep(600_000);
        return activities.recordAlertEvent(input);
      },
    }));
    await trigger(`${loser}-cpu`);
    const migrating = await waitForEvent(`${loser}-cpu`, 'migrating');
    const moved = (JSON.parse(migrating.notes) as { guest: { name: string } }).guest.name;
    await waitFor(`${moved} moved`, async () => ((await serverHost(moved)) !== loser ? true : null));
    expect((await lockHolder())?.description).toContain(`rule ${loser}-cpu`);

    await stack.stopWorker();
    await new Promise((r) => setTimeout(r, TIMINGS.lockLeaseMs + 2_000));
    await stack.startWorker();

    await trigger('hot4-cpu');
    await waitForEvent('hot4-cpu', 'migrate_success');
    expect((await events('hot4-cpu')).some((e) => e.action === 'skipped')).toBe(false);
    // The stalled batch finishes its records too, and nothing holds the lock at the end.
    await waitForEvent(`${loser}-cpu`, 'migrate_success');
    await waitFor('the lock free', async () => ((await lockHolder()) === null ? true : null));
    await recordHistory(stack.lockWorkflowId, 'migration-lock.json');
  });
});
