import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { eq } from 'drizzle-orm';
import { migrations } from '../../db/schema.ts';
import { sleep } from '../../scripts/services/proc-table.ts';
import { guestOnAgent } from '../lib/agent-guest.ts';
import { MAX_BANDWIDTH_MB } from './guest.ts';
import { migrationMarks, readRunHistory, runCounts, type RunCounts, type RunHistory } from './history.ts';
import type { AgentLogLine, Orchestrator } from './stack.ts';

/** How often the benchmark reads the migration row; the end time comes from the row itself, not the poll. */
const ROW_POLL_MS = 100;

export type PhaseTimings = Record<string, { startedAt: number; endedAt?: number }>;

export interface MigrationEvent {
  at: string;
  type: string;
  data: Record<string, unknown>;
}

/** One migration through POST /v1/servers/:id/live-migrate; times are epoch ms unless named ...Ms. */
export interface ApiRun {
  from: string;
  to: string;
  migrationId: string;
  requestAt: number;
  /** The 202 arrived (the API answers once the workflow's pre-checks are done). */
  responseAt: number;
  /** The phase the 202 named: 'preparing' when the API had the pre-check verdict, else 'prechecks'. */
  answeredPhase: string;
  /** When the source agent issued QMP `migrate`. */
  migrateAt: number;
  migrateAtSource: 'MigrationStatus.startedAt' | 'agent log line';
  /**
   * When QEMU completed: a completion time in the source's MigrationStatus if the agent reports one
   * (completedAt / finishedAt), else MigrationStatus.startedAt + QEMU's total-time (both from the
   * monitorMigration result), else the agent's "(source) completed" log line, else migrate + total-time.
   */
  qemuCompletedAt: number;
  qemuCompletedAtSource:
    | 'MigrationStatus.completedAt'
    | 'MigrationStatus.startedAt + totalTimeMs'
    | 'agent log line'
    | 'migrate + totalTimeMs';
  /**
   * When the workflow learnt it: the monitorMigration activity that returned QEMU's completion completed
   * (its ActivityTaskCompleted event time). NaN when the history has no such activity.
   */
  noticedAt: number;
  /** Workflow tasks, activities, local activities and events before migrate, after completion, in all. */
  counts: RunCounts;
  /** timings.completed.startedAt: the row turned completed (database clock, same machine). */
  completedAt: number;
  timings: PhaseTimings;
  events: MigrationEvent[];
  /** QEMU's measured downtime (the row's final progress sample). */
  downtimeMs: number | null;
  totalTimeMs: number | null;
  corruption: string[];
  /** The workflow run's activities and workflow tasks, from its Temporal history. */
  history: RunHistory;
}

interface RowBody {
  phase: string;
  error: string | null;
  workflowId: string;
  timings: PhaseTimings;
  progress: { downtimeMs?: number | null } | null;
  events: MigrationEvent[];
}

/**
 * POST live-migrate to `to` with max_bandwidth_mb 100, then waits for the migration row to be completed.
 * The request -> migrate latency comes from MigrationStatus.startedAt (read back from the workflow
 * history: the result of startSourceMigration / monitorMigration) when the agent reports it, else
 * from the moment the source agent logged "migration ... started" (logged right after QMP `migrate`
 * returned; the agents run in this process, so the time is exact to the event loop).
 */
export async function migrateViaApi(
  stack: Orchestrator,
  root: string,
  guest: { id: string; name: string },
  from: string,
  to: string,
): Promise<ApiRun> {
  const seen: AgentLogLine[] = [];
  const unsubscribe = stack.onAgentLog((line) => {
    if (line.host === from && line.message.includes('migration')) seen.push(line);
  });
  try {
    const requestAt = Date.now();
    const res = await stack.api<{ id?: string; phase?: string }>(
      'POST',
      `/v1/servers/${guest.name}/live-migrate`,
      { prefer_host: to, max_bandwidth_mb: MAX_BANDWIDTH_MB },
    );
    const responseAt = Date.now();
    if (res.status !== 202 || !res.body.id) {
      throw new Error(`POST live-migrate ${from} -> ${to}: ${res.status} ${JSON.stringify(res.body)}`);
    }
    const migrationId = res.body.id;

    let phase = '';
    let deadline = Date.now() + 300_000;
    for (;;) {
      const [row] = await stack.db.db
        .select({ phase: migrations.phase, error: migrations.error })
        .from(migrations)
        .where(eq(migrations.id, migrationId));
      phase = row?.phase ?? 'missing';
      if (phase === 'completed') break;
      if (phase === 'failed' || phase === 'cancelled' || phase === 'missing') {
        throw new Error(`migration ${migrationId} ${from} -> ${to} ended ${phase}: ${row?.error ?? ''}`);
      }
      if (Date.now() > deadline) throw new Error(`migration ${migrationId} still ${phase} after 300 s`);
      await sleep(ROW_POLL_MS);
    }

    const body = (await stack.api<RowBody>('GET', `/v1/migrations/${migrationId}`)).body;
    const completedAt = body.timings.completed?.startedAt;
    if (completedAt === undefined) throw new Error(`migration ${migrationId}: no completed timing`);

    const startedLine = seen.find((l) => l.message.includes(`migration ${migrationId} started`));
    const completedLine = seen.find((l) => l.message.includes(`migration ${migrationId} (source) completed`));
    // The migration's only run: a migrate request starts one per migration.
    const handle = stack.temporal.workflow.getHandle(body.workflowId);
    const history = readRunHistory((await handle.fetchHistory()).events ?? []);
    const startedAt = startedAtOf(history);
    const migrateAt = startedAt ?? startedLine?.at;
    if (migrateAt === undefined) throw new Error(`migration ${migrationId}: no trace of QMP migrate`);
    const switched = body.events.find((e) => e.type === 'switched_over')?.data ?? {};
    const { monitor } = migrationMarks(history);
    const final = (monitor?.result ?? {}) as Record<string, unknown>;
    const num = (value: unknown) => (typeof value === 'number' && value > 0 ? value : undefined);
    const totalTimeMs =
      typeof switched.totalTimeMs === 'number' ? switched.totalTimeMs : (num(final.totalTimeMs) ?? null);
    // The row's last progress sample is QEMU's query-migrate at completion. (The switched_over event's
    // downtimeMs is overwritten by the monitor's applied downtime *limit*: not the measured downtime.)
    const downtimeMs =
      body.progress?.downtimeMs ?? (typeof switched.downtimeMs === 'number' ? switched.downtimeMs : null);
    const statusCompletedAt = num(final.completedAt) ?? num(final.finishedAt);
    const finalStartedAt = num(final.startedAt) ?? startedAt;
    const finalTotalMs = num(final.totalTimeMs) ?? totalTimeMs ?? undefined;
    let qemuCompletedAt: number;
    let qemuCompletedAtSource: ApiRun['qemuCompletedAtSource'];
    if (statusCompletedAt !== undefined) {
      qemuCompletedAt = statusCompletedAt;
      qemuCompletedAtSource = 'MigrationStatus.completedAt';
    } else if (finalStartedAt !== undefined && finalTotalMs !== undefined) {
      qemuCompletedAt = finalStartedAt + finalTotalMs;
      qemuCompletedAtSource = 'MigrationStatus.startedAt + totalTimeMs';
    } else if (completedLine) {
      qemuCompletedAt = completedLine.at;
      qemuCompletedAtSource = 'agent log line';
    } else {
      qemuCompletedAt = migrateAt + (finalTotalMs ?? Number.NaN);
      qemuCompletedAtSource = 'migrate + totalTimeMs';
    }

    // Not timed: the guest runs on the destination (heartbeat advancing, asked of its agent) before the next
    // round starts.
    deadline = Date.now() + 30_000;
    let firstCounter: number | null = null;
    for (;;) {
      const server = await stack.api<{ status: string; host: { name: string } }>(
        'GET',
        `/v1/servers/${guest.id}`,
      );
      const onAgent = await guestOnAgent(stack, to, guest.id);
      const counter = onAgent?.heartbeat?.counter ?? null;
      if (server.body.status === 'running' && server.body.host.name === to && counter !== null) {
        firstCounter ??= counter;
        if (counter >= firstCounter + 1) break;
      }
      if (Date.now() > deadline) throw new Error(`guest not running on ${to} after the migration`);
      await sleep(250);
    }
    const serial = path.join(root, 'agents', to, 'guests', guest.id, 'serial.log');
    const corruption = (await readFile(serial, 'latin1').catch(() => ''))
      .split('\n')
      .filter((line) => line.includes('DIRTIER CORRUPT'));

    return {
      from,
      to,
      migrationId,
      requestAt,
      responseAt,
      answeredPhase: res.body.phase ?? '',
      migrateAt,
      migrateAtSource: startedAt !== undefined ? 'MigrationStatus.startedAt' : 'agent log line',
      qemuCompletedAt,
      qemuCompletedAtSource,
      noticedAt: monitor?.completedAt ?? Number.NaN,
      counts: runCounts(history),
      completedAt,
      timings: body.timings,
      events: body.events,
      downtimeMs,
      totalTimeMs,
      corruption,
      history,
    };
  } finally {
    unsubscribe();
  }
}

/**
 * MigrationStatus.startedAt as the workflow received it from the source agent (the result of the
 * step that started the copy (an activity or a local one) or of monitorMigration), or undefined while agents do
 * not report it.
 */
function startedAtOf(history: RunHistory): number | undefined {
  const { start } = migrationMarks(history);
  const results = [
    start?.result,
    ...history.activities.filter((a) => a.name === 'monitorMigration').map((a) => a.result),
  ];
  for (const result of results) {
    const startedAt = (result as { startedAt?: unknown } | undefined)?.startedAt;
    if (typeof startedAt === 'number' && startedAt > 0) return startedAt;
  }
  return undefined;
}
