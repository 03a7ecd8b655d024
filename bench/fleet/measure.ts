import type { Client } from '@temporalio/client';
import { sql } from 'drizzle-orm';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Db } from '../../db/client.ts';
import { alertScheduleId } from '../../domain/workflow-ids.ts';
import { countHistory, eventMs, type HistoryCounts, type HistoryEvent } from '../live-migrate/history.ts';
import { quantile } from '../lib/stats.ts';

export type Api = <T>(method: string, path: string, body?: unknown) => Promise<{ status: number; body: T }>;

export interface Latencies {
  n: number;
  p50: number;
  p99: number;
  max: number;
}

export function latencies(values: readonly number[]): Latencies {
  const sorted = [...values].sort((a, b) => a - b);
  return {
    n: sorted.length,
    p50: quantile(sorted, 0.5),
    p99: quantile(sorted, 0.99),
    max: sorted.at(-1) ?? NaN,
  };
}

/** `requests` page reads of a list, 100 items each, following the cursor (from the start again at the end). */
export async function pageReads(api: Api, list: string, requests: number): Promise<Latencies> {
  const times: number[] = [];
  let cursor: string | null = null;
  while (times.length < requests) {
    const query = new URLSearchParams({ limit: '100' });
    if (cursor !== null) query.set('cursor', cursor);
    const started = performance.now();
    const res = await api<{ items: unknown[]; next_cursor: string | null }>('GET', `${list}?${query}`);
    times.push(performance.now() - started);
    if (res.status !== 200) throw new Error(`GET ${list}: ${res.status} ${JSON.stringify(res.body)}`);
    cursor = res.body.next_cursor;
  }
  return latencies(times);
}

/** Points InfluxDB 1.x accepted so far (its /debug/vars counters). */
export async function influxPointsWritten(influxUrl: string): Promise<number> {
  const vars = (await (await fetch(`${influxUrl}/debug/vars`)).json()) as Record<
    string,
    { name?: string; values?: Record<string, number> }
  >;
  const httpd = Object.values(vars).find((v) => v.name === 'httpd');
  return Number(httpd?.values?.pointsWrittenOK ?? NaN);
}

/** Rows inserted, updated and deleted so far, per table (PostgreSQL's statistics). */
export async function tableWrites(db: Db): Promise<Map<string, number>> {
  // The statistics of a transaction reach the views within a second: wait that out so a window is complete.
  await sleep(1_500);
  const result = await db.execute<{ relname: string; writes: string }>(
    sql`select relname, (n_tup_ins + n_tup_upd + n_tup_del)::text as writes from pg_stat_user_tables`,
  );
  return new Map(result.rows.map((r) => [r.relname, Number(r.writes)]));
}

export function writesBetween(before: Map<string, number>, after: Map<string, number>): Map<string, number> {
  const delta = new Map<string, number>();
  for (const [table, writes] of after) delta.set(table, writes - (before.get(table) ?? 0));
  return delta;
}

export interface CycleTiming {
  outcome: string;
  /** Workflow start to close. */
  totalMs: number;
  /** planAlertCycle: the InfluxDB reads and the plan, scheduled to completed. */
  planMs: number;
  /** Start to the last move's child migration started (NaN without moves): the cycle without the migrations. */
  toLastMoveStartedMs: number;
  moves: number;
  counts: HistoryCounts;
  /** Where the time went: each activity's completion and the first and last child started, ms after the start. */
  timeline: { step: string; atMs: number }[];
}

/** Triggers a rule's schedule now and times the cycle it starts from its history. */
export async function triggerCycle(temporal: Client, ruleName: string): Promise<CycleTiming> {
  const schedule = temporal.schedule.getHandle(alertScheduleId(ruleName));
  // A trigger while the schedule's own cycle runs is skipped (overlap policy skip), so wait that one out; one
  // the schedule starts after this read is new to `before`, and is timed instead of the triggered one.
  let before = new Set<string>();
  for (let waited = 0; ; waited += 250) {
    const { info } = await schedule.describe();
    if (info.runningActions.length === 0) {
      before = new Set(info.recentActions.map((a) => a.action.workflow.firstExecutionRunId));
      break;
    }
    if (waited > 120_000) throw new Error(`the schedule of rule ${ruleName} kept a cycle running for 2 min`);
    await sleep(250);
  }
  await schedule.trigger();
  let run: { workflowId: string; runId: string } | undefined;
  for (let i = 0; i < 300 && run === undefined; i++) {
    const actions = (await schedule.describe()).info.recentActions;
    const found = actions.map((a) => a.action.workflow).find((w) => !before.has(w.firstExecutionRunId));
    run = found && { workflowId: found.workflowId, runId: found.firstExecutionRunId };
    if (run === undefined) await sleep(100);
  }
  if (run === undefined) throw new Error(`the schedule of rule ${ruleName} started no cycle`);
  const handle = temporal.workflow.getHandle(run.workflowId, run.runId);
  const outcome = (await handle.result()) as { outcome: string };
  const events: HistoryEvent[] = (await handle.fetchHistory()).events ?? [];
  const startMs = eventMs(events[0]?.eventTime);
  const closeMs = eventMs(events.at(-1)?.eventTime);
  const scheduled = new Map<number, { type: string; atMs: number }>();
  let planMs = NaN;
  const childStarts: number[] = [];
  const timeline: { step: string; atMs: number }[] = [];
  for (const event of events) {
    const atMs = eventMs(event.eventTime);
    const type = event.activityTaskScheduledEventAttributes?.activityType?.name;
    if (type) scheduled.set(Number(event.eventId), { type, atMs });
    const completed = event.activityTaskCompletedEventAttributes;
    const activity = completed && scheduled.get(Number(completed.scheduledEventId));
    if (activity) {
      if (activity.type === 'planAlertCycle') planMs = atMs - activity.atMs;
      timeline.push({ step: `${activity.type} done`, atMs: atMs - startMs });
    }
    const asked = 'first child start asked';
    if (event.startChildWorkflowExecutionInitiatedEventAttributes && !timeline.some((t) => t.step === asked))
      timeline.push({ step: asked, atMs: atMs - startMs });
    if (event.childWorkflowExecutionStartedEventAttributes) {
      if (childStarts.length === 0) timeline.push({ step: 'first child started', atMs: atMs - startMs });
      childStarts.push(atMs);
    }
  }
  if (childStarts.length > 0)
    timeline.push({ step: 'last child started', atMs: Math.max(...childStarts) - startMs });
  return {
    outcome: outcome.outcome,
    totalMs: closeMs - startMs,
    planMs,
    toLastMoveStartedMs: childStarts.length > 0 ? Math.max(...childStarts) - startMs : NaN,
    moves: childStarts.length,
    counts: countHistory(events),
    timeline: timeline.sort((a, b) => a.atMs - b.atMs),
  };
}

/** Live-migrate requests in flight at once, at most. */
const REQUESTS_AT_ONCE = 16;

export interface SustainedRun {
  seconds: number;
  completed: number;
  failed: number;
  perMinute: number;
  workflowIds: string[];
  requestErrors: Map<string, number>;
  /** Why the failed ones failed (their rows' error, cut to its first 120 characters). */
  failures: Map<string, number>;
}

/**
 * Keeps `inFlight` live migrations of the given guests going for `warmupS + seconds` and counts those that
 * finished inside the measured window (from the migration rows, as the API writes them).
 */
export async function sustainMigrations(options: {
  api: Api;
  db: Db;
  guestIds: readonly string[];
  inFlight: number;
  warmupS: number;
  seconds: number;
  onProgress?: (line: string) => void;
  /** Called as the measured window opens and closes (before the drain of what is still in flight). */
  onWindow?: (edge: 'open' | 'close') => Promise<void>;
}): Promise<SustainedRun> {
  const { api, db } = options;
  const idle = [...options.guestIds];
  const running = new Map<string, string>();
  const requestErrors = new Map<string, number>();
  const failures = new Map<string, number>();
  const startedAt = Date.now();
  const windowFrom = startedAt + options.warmupS * 1000;
  const windowTo = windowFrom + options.seconds * 1000;
  let completed = 0;
  let failed = 0;
  const workflowIds: string[] = [];
  let lastProgress = Date.now();
  let windowOpen = false;
  let pending = 0;
  type Answer = { status: number; body: { id?: string; error?: { code: string } } };
  const request = async (guestId: string): Promise<void> => {
    const res: Answer = await api<Answer['body']>('POST', `/v1/servers/${guestId}/live-migrate`, {}).catch(
      (error: unknown) => ({
        status: 0,
        body: {
          error: { code: `request failed: ${error instanceof Error ? error.message : String(error)}` },
        },
      }),
    );
    if (res.status === 202 && res.body.id) running.set(res.body.id, guestId);
    else {
      const code = `${res.status} ${res.body.error?.code ?? ''}`.trim();
      requestErrors.set(code, (requestErrors.get(code) ?? 0) + 1);
      idle.push(guestId);
    }
  };
  while (Date.now() < windowTo) {
    if (!windowOpen && Date.now() >= windowFrom) {
      windowOpen = true;
      await options.onWindow?.('open');
    }
    // Requests go out side by side (each waits for its pre-check verdict): one after another, they and not the
    // workers would set the pace.
    const want = Math.min(options.inFlight - running.size - pending, REQUESTS_AT_ONCE - pending, idle.length);
    for (let i = 0; i < want; i++) {
      const guestId = idle.splice(Math.floor(Math.random() * idle.length), 1)[0]!;
      pending++;
      void request(guestId).finally(() => pending--);
    }
    await sleep(500);
    if (running.size === 0) continue;
    const rows = await db.execute<{
      id: string;
      phase: string;
      finished_at: Date | null;
      workflow_id: string;
      error: string | null;
    }>(
      sql`select id, phase, finished_at, workflow_id, error from migrations where id in (${sql.join(
        [...running.keys()].map((id) => sql`${id}::uuid`),
        sql`, `,
      )}) and finished_at is not null`,
    );
    for (const row of rows.rows) {
      const guestId = running.get(row.id);
      if (guestId === undefined) continue;
      running.delete(row.id);
      idle.push(guestId);
      const finished = new Date(row.finished_at!).getTime();
      if (finished >= windowFrom && finished < windowTo) {
        if (row.phase === 'completed') {
          completed++;
          workflowIds.push(row.workflow_id);
        } else {
          failed++;
          const reason = `${row.phase}: ${(row.error ?? '').slice(0, 120)}`;
          failures.set(reason, (failures.get(reason) ?? 0) + 1);
        }
      }
    }
    if (options.onProgress && Date.now() - lastProgress >= 30_000) {
      lastProgress = Date.now();
      const phase = Date.now() < windowFrom ? 'warming up' : 'measuring';
      options.onProgress(
        `  ${phase}: ${running.size} in flight (${await phasesOf(db, [...running.keys()])}), ` +
          `${completed} completed in the window`,
      );
    }
  }
  await options.onWindow?.('close');
  // What is still in flight finishes outside the window: let it, so the next run starts from quiet.
  const drainUntil = Date.now() + 120_000;
  while ((running.size > 0 || pending > 0) && Date.now() < drainUntil) {
    await sleep(1_000);
    if (running.size === 0) continue;
    const rows = await db.execute<{ id: string }>(
      sql`select id from migrations where id in (${sql.join(
        [...running.keys()].map((id) => sql`${id}::uuid`),
        sql`, `,
      )}) and finished_at is not null`,
    );
    for (const row of rows.rows) running.delete(row.id);
  }
  return {
    seconds: options.seconds,
    completed,
    failed,
    perMinute: (completed / options.seconds) * 60,
    workflowIds,
    requestErrors,
    failures,
  };
}

/** How many of these migrations are in each phase, e.g. "copying 30, prechecks 10": where a stall waits. */
async function phasesOf(db: Db, ids: readonly string[]): Promise<string> {
  if (ids.length === 0) return 'none';
  const rows = await db.execute<{ phase: string; n: number }>(
    sql`select phase, count(*)::int as n from migrations where id in (${sql.join(
      ids.map((id) => sql`${id}::uuid`),
      sql`, `,
    )}) group by phase order by n desc, phase`,
  );
  return rows.rows.map((row) => `${row.phase} ${row.n}`).join(', ');
}

/** History counts of up to `sample` of these runs (the latest run of each workflow id). */
export async function historyCounts(temporal: Client, workflowIds: readonly string[], sample: number) {
  const counts: HistoryCounts[] = [];
  for (const id of workflowIds.slice(0, sample)) {
    const events = (await temporal.workflow.getHandle(id).fetchHistory()).events ?? [];
    counts.push(countHistory(events));
  }
  return counts;
}
