import {
  ScheduleAlreadyRunning,
  ScheduleNotFoundError,
  ScheduleOverlapPolicy,
  type Client,
  type ScheduleDescription,
  type ScheduleOptions,
  type ScheduleOptionsStartWorkflowAction,
} from '@temporalio/client';
import { msToTs, optionalTsToMs } from '@temporalio/common/lib/time.js';
import {
  namespaceRetentionChange,
  PRUNE_HISTORY_EVERY_MS,
  PRUNE_HISTORY_SCHEDULE_ID,
  PRUNE_HISTORY_WORKFLOW_ID,
  type PruneHistoryInput,
  type RetentionDays,
} from '../domain/retention.ts';
import type { pruneHistoryCycle } from '../workflows/prune-history.ts';

export interface RetentionHome {
  /** Its namespace is the one whose retention is set. */
  temporal: Client;
  taskQueue: string;
  log: (line: string) => void;
}

export type ScheduleOutcome = 'created' | 'updated' | 'unchanged' | 'deleted' | 'absent';
/** 'failed': the server refused (Temporal Cloud, no permission); the worker goes on and says so. */
export type NamespaceOutcome = 'set' | 'unchanged' | 'left' | 'failed';

/**
 * Run at every worker start: the `prune-history` schedule and the namespace's retention made what
 * RETENTION_DAYS says. With retention off, the schedule goes and the namespace is left as it is.
 */
export async function applyRetention(
  home: RetentionHome,
  days: RetentionDays,
): Promise<{ schedule: ScheduleOutcome; namespace: NamespaceOutcome }> {
  if (days === null) {
    const schedule = await deletePruneSchedule(home);
    home.log(`retention off: nothing is pruned (prune-history schedule ${schedule})`);
    return { schedule, namespace: 'left' };
  }
  const schedule = await syncPruneSchedule(home, days);
  const namespace = await syncNamespaceRetention(home, days);
  home.log(`retention ${days} days: prune-history schedule ${schedule}, namespace retention ${namespace}`);
  return { schedule, namespace };
}

type PruneSchedule = ScheduleOptions<ScheduleOptionsStartWorkflowAction<typeof pruneHistoryCycle>>;

export function desiredPruneSchedule(
  home: RetentionHome,
  days: number,
): ScheduleOptions<ScheduleOptionsStartWorkflowAction<typeof pruneHistoryCycle>> {
  const input: PruneHistoryInput = { retentionDays: days };
  return {
    scheduleId: PRUNE_HISTORY_SCHEDULE_ID,
    spec: { intervals: [{ every: PRUNE_HISTORY_EVERY_MS }] },
    action: {
      type: 'startWorkflow',
      workflowType: 'pruneHistoryCycle',
      args: [input],
      taskQueue: home.taskQueue,
      workflowId: PRUNE_HISTORY_WORKFLOW_ID,
      staticSummary: `prune events and finished migrations older than ${days} days`,
    },
    // A run missed while everything was down happens when it comes back, within a day.
    policies: { overlap: ScheduleOverlapPolicy.SKIP, catchupWindow: PRUNE_HISTORY_EVERY_MS },
    state: { note: note(days) },
  };
}

const note = (days: number) => `RETENTION_DAYS=${days}: daily prune of history older than that`;

function matches(description: ScheduleDescription, desired: PruneSchedule): boolean {
  const action = description.action;
  return (
    description.spec.intervals?.length === 1 &&
    description.spec.intervals[0]?.every === PRUNE_HISTORY_EVERY_MS &&
    action.type === 'startWorkflow' &&
    action.workflowType === desired.action.workflowType &&
    action.taskQueue === desired.action.taskQueue &&
    JSON.stringify(action.args) === JSON.stringify(desired.action.args) &&
    description.policies.overlap === ScheduleOverlapPolicy.SKIP &&
    !description.state.paused
  );
}

export async function syncPruneSchedule(home: RetentionHome, days: number): Promise<ScheduleOutcome> {
  const desired = desiredPruneSchedule(home, days);
  try {
    await home.temporal.schedule.create(desired);
    return 'created';
  } catch (err) {
    if (!(err instanceof ScheduleAlreadyRunning)) throw err;
  }
  const handle = home.temporal.schedule.getHandle(PRUNE_HISTORY_SCHEDULE_ID);
  if (matches(await handle.describe(), desired)) return 'unchanged';
  await handle.update(() => ({
    spec: desired.spec,
    action: desired.action,
    policies: desired.policies,
    state: { paused: false, note: note(days) },
  }));
  return 'updated';
}

export async function deletePruneSchedule(home: RetentionHome): Promise<ScheduleOutcome> {
  try {
    await home.temporal.schedule.getHandle(PRUNE_HISTORY_SCHEDULE_ID).delete();
    return 'deleted';
  } catch (err) {
    if (err instanceof ScheduleNotFoundError) return 'absent';
    throw err;
  }
}

/** Closed runs' histories kept as long as the rows they made: the namespace's retention set to match. */
export async function syncNamespaceRetention(home: RetentionHome, days: number): Promise<NamespaceOutcome> {
  const namespace = home.temporal.options.namespace;
  const service = home.temporal.workflowService;
  try {
    const described = await service.describeNamespace({ namespace });
    const ttlMs = optionalTsToMs(described.config?.workflowExecutionRetentionTtl);
    const seconds = ttlMs === undefined ? null : ttlMs / 1000;
    const wanted = namespaceRetentionChange(seconds, days);
    if (wanted === null) return 'unchanged';
    await service.updateNamespace({
      namespace,
      config: { workflowExecutionRetentionTtl: msToTs(wanted * 1000) },
    });
    return 'set';
  } catch (err) {
    home.log(
      `could not set the retention of Temporal namespace '${namespace}' to ${days} days ` +
        `(${err instanceof Error ? err.message : String(err)}); set it yourself: ` +
        `temporal operator namespace update --namespace ${namespace} --retention ${days * 24}h`,
    );
    return 'failed';
  }
}
