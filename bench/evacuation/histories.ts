import type { Client } from '@temporalio/client';
import {
  countHistory,
  eventMs,
  payloadJson,
  readRunHistory,
  type HistoryCounts,
  type HistoryEvent,
} from '../live-migrate/history.ts';
import type { Move } from './analysis.ts';

/** The names the slots protocol uses (workflows/migration-slots-messages.ts). */
const RELEASE = 'releaseSlot';
const GRANTED = 'slotGranted';

export interface Run {
  workflowId: string;
  runId: string;
  events: HistoryEvent[];
  counts: HistoryCounts;
}

/** Every run of a workflow type on the benchmark's own Temporal server, with its history. */
export async function runsOf(temporal: Client, workflowType: string): Promise<Run[]> {
  const runs: Run[] = [];
  for await (const info of temporal.workflow.list({ query: `WorkflowType = '${workflowType}'` })) {
    const history = await temporal.workflow.getHandle(info.workflowId, info.runId).fetchHistory();
    const events = history.events ?? [];
    runs.push({ workflowId: info.workflowId, runId: info.runId, events, counts: countHistory(events) });
  }
  return runs;
}

/**
 * One slot hand-over, epoch ms: the holder sends releaseSlot (t0), the slots workflow receives it (t1) and,
 * in its next workflow task, signals slotGranted to the waiter (t2), which receives it (t3), records its
 * slot_granted event and enters phase preparing (slotAt, database clock).
 */
export interface HandOver {
  holder: string;
  waiter: string;
  holderCompletedAt: number;
  releaseSentAt: number;
  releaseReceivedAt: number;
  grantSentAt: number;
  grantReceivedAt: number;
  waiterSlotAt: number;
}

const signalSent = (event: HistoryEvent, name: string) =>
  event.signalExternalWorkflowExecutionInitiatedEventAttributes?.signalName === name;
const signalReceived = (event: HistoryEvent, name: string) =>
  event.workflowExecutionSignaledEventAttributes?.signalName === name;

/** A release older than this when a grant goes out did not cause it. */
const STALE_RELEASE_MS = 10_000;

/** Pairs each grant the slots workflow sent with the release it answered (the oldest one unanswered). */
export function handOvers(slotsRuns: readonly Run[], liveRuns: readonly Run[], moves: readonly Move[]) {
  const byWorkflow = new Map(moves.flatMap((m) => (m.workflowId ? [[m.workflowId, m] as const] : [])));
  const byMigration = new Map(moves.map((m) => [m.migrationId, m]));
  const liveEvents = new Map(liveRuns.map((r) => [r.workflowId, r.events]));
  const firstAt = (workflowId: string | null, match: (e: HistoryEvent) => boolean) => {
    const event = (liveEvents.get(workflowId ?? '') ?? []).find(match);
    return event ? eventMs(event.eventTime) : Number.NaN;
  };
  const slotEvents = slotsRuns
    .flatMap((r) => r.events)
    .sort((a, b) => eventMs(a.eventTime) - eventMs(b.eventTime));
  const pending: { at: number; migrationId: string }[] = [];
  const result: HandOver[] = [];
  for (const event of slotEvents) {
    const at = eventMs(event.eventTime);
    if (signalReceived(event, RELEASE)) {
      const input = payloadJson(event.workflowExecutionSignaledEventAttributes?.input?.payloads?.[0]) as
        { migrationId?: string } | undefined;
      if (input?.migrationId) pending.push({ at, migrationId: input.migrationId });
    } else if (signalSent(event, GRANTED)) {
      // The oldest release not answered yet; one long before was not answered by a grant (none waited).
      while (pending.length > 0 && at - (pending[0]?.at ?? at) > STALE_RELEASE_MS) pending.shift();
      const release = pending.shift();
      const waiterId =
        event.signalExternalWorkflowExecutionInitiatedEventAttributes?.workflowExecution?.workflowId;
      const waiter = byWorkflow.get(waiterId ?? '');
      const holder = release ? byMigration.get(release.migrationId) : undefined;
      if (!release || !waiter || !holder) continue;
      result.push({
        holder: holder.guest,
        waiter: waiter.guest,
        holderCompletedAt: holder.completedAt,
        releaseSentAt: firstAt(holder.workflowId, (e) => signalSent(e, RELEASE)),
        releaseReceivedAt: release.at,
        grantSentAt: at,
        grantReceivedAt: firstAt(waiter.workflowId, (e) => signalReceived(e, GRANTED)),
        waiterSlotAt: waiter.slotAt,
      });
    }
  }
  return result;
}

/**
 * How long workflow tasks and activity pick-ups took over a set of runs, for those scheduled in [from, to):
 * the worker's load shows here.
 */
export function taskLatencies(
  runs: readonly Run[],
  from = -Infinity,
  to = Infinity,
): { workflowTaskMs: number[]; activityQueueMs: number[] } {
  const workflowTaskMs: number[] = [];
  const activityQueueMs: number[] = [];
  const inWindow = (at: number) => at >= from && at < to;
  for (const run of runs) {
    const history = readRunHistory(run.events);
    for (const task of history.workflowTasks)
      if (inWindow(task.scheduledAt)) workflowTaskMs.push(task.completedAt - task.scheduledAt);
    for (const activity of history.activities)
      if (inWindow(activity.scheduledAt)) activityQueueMs.push(activity.startedAt - activity.scheduledAt);
  }
  return { workflowTaskMs, activityQueueMs };
}
