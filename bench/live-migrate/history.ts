import type { Client } from '@temporalio/client';
import type { History } from '@temporalio/common/lib/proto-utils.js';

export type HistoryEvent = NonNullable<History['events']>[number];
type Payload = NonNullable<
  NonNullable<NonNullable<HistoryEvent['activityTaskCompletedEventAttributes']>['result']>['payloads']
>[number];

/** One activity of a workflow run as its history records it; epoch ms. */
export interface ActivitySpan {
  name: string;
  scheduledAt: number;
  startedAt: number;
  completedAt: number;
  /** The JSON result, when it is one. */
  result: unknown;
  /** Event ids of its ActivityTaskScheduled and ActivityTaskCompleted events. */
  scheduledEventId: number;
  completedEventId: number;
}

/**
 * One local activity (proxyLocalActivities): it runs inside a workflow task, on the worker, and leaves
 * no scheduled/started/completed events, only a MarkerRecorded event (marker name 'core_local_activity')
 * written when the workflow task that ran it completes. The marker's details hold, under 'data', a JSON
 * payload of Core's LocalActivityMarkerData (seq, attempt, activity_id, activity_type, complete_time,
 * ...), and under 'result' the activity's result. Epoch ms.
 */
export interface LocalActivitySpan {
  name: string;
  /**
   * When the activity returned, as the worker perceived it (the marker's complete_time: the workflow
   * time when it started + its runtime); the marker's event time when the marker has none.
   */
  completedAt: number;
  /** The marker's event time: the completion of the workflow task that recorded it (>= completedAt). */
  recordedAt: number;
  /**
   * Its runtime as far as the marker tells it: completedAt minus the previous local activity's
   * completedAt in the same workflow task, or that task's start for the first one. Exact for local
   * activities awaited one after the other (the worker's workflow clock moves to each one's
   * complete_time); NaN when unknown.
   */
  runMs: number;
  attempt: number;
  /** The marker carries a failure (the activity failed for good, or its attempt did). */
  failed: boolean;
  /** The JSON result, when it is one. */
  result: unknown;
  eventId: number;
}

/** One workflow task (the worker running workflow code between two awaits); epoch ms. */
export interface WorkflowTaskSpan {
  scheduledAt: number;
  completedAt: number;
  scheduledEventId: number;
}

export interface RunHistory {
  startedAt: number;
  closedAt: number;
  activities: ActivitySpan[];
  localActivities: LocalActivitySpan[];
  workflowTasks: WorkflowTaskSpan[];
  /** Events in the run's history. */
  eventCount: number;
  /** Event id of the run's last event (events are numbered from 1, in order). */
  lastEventId: number;
}

/** The marker name Core (the TS SDK's worker) records local activity results under. */
export const LOCAL_ACTIVITY_MARKER = 'core_local_activity';

/** An event's time, epoch ms. */
export function eventMs(time: HistoryEvent['eventTime']): number {
  if (!time) return Number.NaN;
  return Number(time.seconds ?? 0) * 1000 + (time.nanos ?? 0) / 1e6;
}

type Timestamp = { seconds?: unknown; nanos?: unknown } | null | undefined;

/** A protobuf Timestamp as serde writes it into JSON ({ seconds, nanos }), epoch ms; NaN when absent. */
function timestampMs(time: Timestamp): number {
  if (!time || typeof time !== 'object') return Number.NaN;
  const seconds = Number(time.seconds ?? Number.NaN);
  const nanos = Number(time.nanos ?? 0);
  return seconds * 1000 + nanos / 1e6;
}

/** A payload's JSON value, or undefined when it is not JSON. */
export function payloadJson(payload: Payload | undefined): unknown {
  if (!payload?.data) return undefined;
  try {
    return JSON.parse(Buffer.from(payload.data).toString('utf8'));
  } catch {
    return undefined;
  }
}

/** Core's LocalActivityMarkerData as JSON (snake_case: serde of the proto, no renaming). */
interface LocalActivityMarkerData {
  seq?: number;
  attempt?: number;
  activity_id?: string;
  activity_type?: string;
  complete_time?: Timestamp;
  /** camelCase spellings, in case another SDK or version writes them so. */
  activityType?: string;
  completeTime?: Timestamp;
}

/** Activities, local activities and workflow tasks of one run, from its event history. */
export function readRunHistory(events: HistoryEvent[]): RunHistory {
  const activities = new Map<string, Partial<ActivitySpan>>();
  const tasks = new Map<string, Partial<WorkflowTaskSpan>>();
  /** Workflow task started event id -> its time; completed event id -> its started time. */
  const taskStartedAt = new Map<string, number>();
  const taskOfCompleted = new Map<string, number>();
  const locals: (LocalActivitySpan & { task: string })[] = [];
  let startedAt = Number.NaN;
  let closedAt = Number.NaN;
  let lastEventId = 0;
  for (const event of events) {
    const id = String(event.eventId);
    const eventId = Number(event.eventId ?? 0);
    lastEventId = Math.max(lastEventId, eventId);
    const at = eventMs(event.eventTime);
    if (event.workflowExecutionStartedEventAttributes) startedAt = at;
    if (
      event.workflowExecutionCompletedEventAttributes ||
      event.workflowExecutionFailedEventAttributes ||
      event.workflowExecutionTerminatedEventAttributes ||
      event.workflowExecutionCanceledEventAttributes ||
      event.workflowExecutionTimedOutEventAttributes ||
      event.workflowExecutionContinuedAsNewEventAttributes
    )
      closedAt = at;
    if (event.workflowTaskScheduledEventAttributes)
      tasks.set(id, { scheduledAt: at, scheduledEventId: eventId });
    if (event.workflowTaskStartedEventAttributes) taskStartedAt.set(id, at);
    const taskDone = event.workflowTaskCompletedEventAttributes;
    if (taskDone) {
      const task = tasks.get(String(taskDone.scheduledEventId));
      if (task) task.completedAt = at;
      taskOfCompleted.set(id, taskStartedAt.get(String(taskDone.startedEventId)) ?? Number.NaN);
    }
    const scheduled = event.activityTaskScheduledEventAttributes;
    if (scheduled) {
      activities.set(id, {
        name: scheduled.activityType?.name ?? '?',
        scheduledAt: at,
        scheduledEventId: eventId,
      });
    }
    const started = event.activityTaskStartedEventAttributes;
    if (started) {
      const activity = activities.get(String(started.scheduledEventId));
      if (activity) activity.startedAt = at;
    }
    const completed = event.activityTaskCompletedEventAttributes;
    if (completed) {
      const activity = activities.get(String(completed.scheduledEventId));
      if (activity) {
        activity.completedAt = at;
        activity.completedEventId = eventId;
        activity.result = payloadJson(completed.result?.payloads?.[0]);
      }
    }
    const marker = event.markerRecordedEventAttributes;
    if (marker?.markerName === LOCAL_ACTIVITY_MARKER) {
      const data = (payloadJson(marker.details?.['data']?.payloads?.[0]) ?? {}) as LocalActivityMarkerData;
      const completeTime = timestampMs(data.complete_time ?? data.completeTime);
      locals.push({
        name: data.activity_type ?? data.activityType ?? '?',
        completedAt: Number.isFinite(completeTime) ? completeTime : at,
        recordedAt: at,
        runMs: Number.NaN,
        attempt: data.attempt ?? 1,
        failed: Boolean(marker.failure),
        result: payloadJson(marker.details?.['result']?.payloads?.[0]),
        eventId,
        task: String(marker.workflowTaskCompletedEventId ?? ''),
      });
    }
  }
  // Runtimes: within one workflow task, the worker's clock starts at the task's start and moves to each
  // local activity's complete_time as it resolves.
  const previousInTask = new Map<string, number>();
  for (const local of locals) {
    const since = previousInTask.get(local.task) ?? taskOfCompleted.get(local.task) ?? Number.NaN;
    local.runMs = local.completedAt - since;
    previousInTask.set(local.task, local.completedAt);
  }
  return {
    startedAt,
    closedAt,
    activities: [...activities.values()].filter(
      (a): a is ActivitySpan => a.startedAt !== undefined && a.completedAt !== undefined,
    ),
    localActivities: locals.map(({ task: _task, ...local }) => local),
    workflowTasks: [...tasks.values()].filter((t): t is WorkflowTaskSpan => t.completedAt !== undefined),
    eventCount: events.length,
    lastEventId,
  };
}

/** What a stretch of a run's history holds: counts that do not depend on the machine. */
export interface StretchCounts {
  workflowTasks: number;
  activities: number;
  localActivities: number;
  events: number;
}

/**
 * Counts of the events with from < event id < to (workflow tasks by their scheduled event, activities
 * by their scheduled event, local activities by their marker). Event ids, not times: the order in which
 * Temporal wrote them, the same on any machine.
 */
export function countStretch(history: RunHistory, from: number, to: number): StretchCounts {
  const inside = (id: number) => id > from && id < to;
  return {
    workflowTasks: history.workflowTasks.filter((t) => inside(t.scheduledEventId)).length,
    activities: history.activities.filter((a) => inside(a.scheduledEventId)).length,
    localActivities: history.localActivities.filter((l) => inside(l.eventId)).length,
    events: Math.max(0, Math.min(to, history.lastEventId + 1) - Math.max(from, 0) - 1),
  };
}

/**
 * The step that issued QMP migrate: an activity (runs before the local agent calls), or a local activity that
 * ran inside the workflow task that prepared the destination.
 */
export interface StartMark {
  name: string;
  /** When the step began: the activity's scheduling, or the local activity's completion minus its runtime. */
  startedAt: number;
  /** The event the stretch before `migrate` ends at: ActivityTaskScheduled, or the local activity's marker. */
  eventId: number;
  local: boolean;
  result: unknown;
}

/** The source's migration as the workflow saw it: the step that started it and the monitor that saw it end. */
export interface MigrationMarks {
  /** The first startSourceMigration (the one that issued QMP migrate). */
  start: StartMark | undefined;
  /** The monitorMigration activity that returned QEMU's completion (else the last monitor). */
  monitor: ActivitySpan | undefined;
}

export const START_STEP = 'startSourceMigration';

export function migrationMarks(history: RunHistory): MigrationMarks {
  const monitors = history.activities.filter((a) => a.name === 'monitorMigration');
  const monitor =
    monitors.findLast((m) => (m.result as { status?: unknown } | undefined)?.status === 'completed') ??
    monitors.at(-1);
  return { start: startMark(history), monitor };
}

function startMark(history: RunHistory): StartMark | undefined {
  const activity = history.activities.find((a) => a.name === START_STEP);
  if (activity) {
    const { name, scheduledAt, scheduledEventId, result } = activity;
    return { name, startedAt: scheduledAt, eventId: scheduledEventId, local: false, result };
  }
  const local = history.localActivities.find((l) => l.name === START_STEP && !l.failed);
  if (!local) return undefined;
  const { name, completedAt, runMs, eventId, result } = local;
  return { name, startedAt: completedAt - runMs, eventId, local: true, result };
}

/** Before QMP migrate / after QEMU completed / the whole run: counts of one run. */
export interface RunCounts {
  /** From the workflow's start up to the step that issues `migrate` (its scheduling, or its local marker). */
  beforeMigrate: StretchCounts;
  /** From the monitor's ActivityTaskCompleted (QEMU completed, the workflow told) to the run's close. */
  afterCompletion: StretchCounts;
  whole: StretchCounts;
}

export function runCounts(history: RunHistory): RunCounts {
  const { start, monitor } = migrationMarks(history);
  const end = history.lastEventId + 1;
  const none: StretchCounts = {
    workflowTasks: Number.NaN,
    activities: Number.NaN,
    localActivities: Number.NaN,
    events: Number.NaN,
  };
  return {
    beforeMigrate: start ? countStretch(history, 0, start.eventId) : none,
    afterCompletion: monitor ? countStretch(history, monitor.completedEventId, end) : none,
    whole: countStretch(history, 0, end),
  };
}

type Interval = [number, number];

function clip(intervals: Interval[], from: number, to: number): Interval[] {
  return intervals
    .map(([a, b]) => [Math.max(a, from), Math.min(b, to)] as Interval)
    .filter(([a, b]) => b > a)
    .sort((x, y) => x[0] - y[0]);
}

function union(intervals: Interval[]): Interval[] {
  const merged: Interval[] = [];
  for (const [a, b] of [...intervals].sort((x, y) => x[0] - y[0])) {
    const last = merged.at(-1);
    if (last && a <= last[1]) last[1] = Math.max(last[1], b);
    else merged.push([a, b]);
  }
  return merged;
}

const length = (intervals: Interval[]) => intervals.reduce((sum, [a, b]) => sum + (b - a), 0);

/** The parts of `covered` not inside any of `taken`. */
function minus(covered: Interval[], taken: Interval[]): Interval[] {
  let rest = union(covered);
  for (const [ta, tb] of union(taken)) {
    rest = rest.flatMap(([a, b]): Interval[] => {
      if (tb <= a || ta >= b) return [[a, b]];
      const parts: Interval[] = [];
      if (ta > a) parts.push([a, ta]);
      if (tb < b) parts.push([tb, b]);
      return parts;
    });
  }
  return rest;
}

/** Where a window of a run's wall time went, by what Temporal was doing; the four add up to the window. */
export interface WindowSplit {
  /** An activity was executing (its own work: database, agent, QEMU). */
  activityRunning: number;
  /** An activity was scheduled but no worker had picked it up yet. */
  activityQueued: number;
  /** A workflow task was scheduled or running (the worker replaying/advancing the workflow). */
  workflowTask: number;
  /** None of those: the API handler, Temporal between events, the client. */
  other: number;
  /** Activities that ran (at least partly) inside the window. */
  activityCount: number;
  /**
   * Local activities that completed inside the window (their time is inside the workflow tasks': a
   * local activity runs on the worker while its workflow task is open).
   */
  localActivityCount: number;
}

export function splitWindow(history: RunHistory, from: number, to: number): WindowSplit {
  const running = union(
    clip(
      history.activities.map((a) => [a.startedAt, a.completedAt]),
      from,
      to,
    ),
  );
  const queued = minus(
    clip(
      history.activities.map((a) => [a.scheduledAt, a.startedAt]),
      from,
      to,
    ),
    running,
  );
  const tasks = minus(
    clip(
      history.workflowTasks.map((t) => [t.scheduledAt, t.completedAt]),
      from,
      to,
    ),
    [...running, ...queued],
  );
  const activityRunning = length(running);
  const activityQueued = length(queued);
  const workflowTask = length(tasks);
  return {
    activityRunning,
    activityQueued,
    workflowTask,
    other: to - from - activityRunning - activityQueued - workflowTask,
    activityCount: history.activities.filter((a) => a.completedAt > from && a.startedAt < to).length,
    localActivityCount: history.localActivities.filter((l) => l.completedAt > from && l.completedAt <= to)
      .length,
  };
}

/** What a run's history holds, by kind: counts that do not depend on the machine. */
export interface HistoryCounts {
  events: number;
  activities: number;
  /** Local activities (MarkerRecorded 'core_local_activity'); not in `activities`. */
  localActivities: number;
  workflowTasks: number;
  timers: number;
  children: number;
  signals: number;
  activityNames: string[];
  localActivityNames: string[];
}

export function countHistory(events: HistoryEvent[]): HistoryCounts {
  const run = readRunHistory(events);
  return {
    events: events.length,
    activities: events.filter((e) => e.activityTaskScheduledEventAttributes).length,
    localActivities: run.localActivities.length,
    workflowTasks: run.workflowTasks.length,
    timers: events.filter((e) => e.timerStartedEventAttributes).length,
    children: events.filter((e) => e.startChildWorkflowExecutionInitiatedEventAttributes).length,
    signals: events.filter((e) => e.workflowExecutionSignaledEventAttributes).length,
    activityNames: events.flatMap((e) => {
      const name = e.activityTaskScheduledEventAttributes?.activityType?.name;
      return name ? [name] : [];
    }),
    localActivityNames: run.localActivities.map((l) => l.name),
  };
}

/** The counts of a workflow's (latest) run. */
export async function historyCounts(temporal: Client, workflowId: string): Promise<HistoryCounts> {
  const history = await temporal.workflow.getHandle(workflowId).fetchHistory();
  return countHistory(history.events ?? []);
}
