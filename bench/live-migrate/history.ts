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
}

/** One workflow task (the worker running workflow code between two awaits); epoch ms. */
export interface WorkflowTaskSpan {
  scheduledAt: number;
  completedAt: number;
}

export interface RunHistory {
  startedAt: number;
  closedAt: number;
  activities: ActivitySpan[];
  workflowTasks: WorkflowTaskSpan[];
}

/** An event's time, epoch ms. */
export function eventMs(time: HistoryEvent['eventTime']): number {
  if (!time) return Number.NaN;
  return Number(time.seconds ?? 0) * 1000 + (time.nanos ?? 0) / 1e6;
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

/** Activities and workflow tasks of one run, from its event history. */
export function readRunHistory(events: HistoryEvent[]): RunHistory {
  const activities = new Map<string, Partial<ActivitySpan>>();
  const tasks = new Map<string, Partial<WorkflowTaskSpan>>();
  let startedAt = Number.NaN;
  let closedAt = Number.NaN;
  for (const event of events) {
    const id = String(event.eventId);
    const at = eventMs(event.eventTime);
    if (event.workflowExecutionStartedEventAttributes) startedAt = at;
    if (
      event.workflowExecutionCompletedEventAttributes ||
      event.workflowExecutionFailedEventAttributes ||
      event.workflowExecutionTerminatedEventAttributes ||
      event.workflowExecutionCanceledEventAttributes
    )
      closedAt = at;
    if (event.workflowTaskScheduledEventAttributes) tasks.set(id, { scheduledAt: at });
    const taskDone = event.workflowTaskCompletedEventAttributes;
    if (taskDone) {
      const task = tasks.get(String(taskDone.scheduledEventId));
      if (task) task.completedAt = at;
    }
    const scheduled = event.activityTaskScheduledEventAttributes;
    if (scheduled) activities.set(id, { name: scheduled.activityType?.name ?? '?', scheduledAt: at });
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
        activity.result = payloadJson(completed.result?.payloads?.[0]);
      }
    }
  }
  return {
    startedAt,
    closedAt,
    activities: [...activities.values()].filter(
      (a): a is ActivitySpan => a.startedAt !== undefined && a.completedAt !== undefined,
    ),
    workflowTasks: [...tasks.values()].filter((t): t is WorkflowTaskSpan => t.completedAt !== undefined),
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
  };
}

/** What a run's history holds, by kind: counts that do not depend on the machine. */
export interface HistoryCounts {
  events: number;
  activities: number;
  workflowTasks: number;
  timers: number;
  children: number;
  signals: number;
  activityNames: string[];
}

export function countHistory(events: HistoryEvent[]): HistoryCounts {
  return {
    events: events.length,
    activities: events.filter((e) => e.activityTaskScheduledEventAttributes).length,
    workflowTasks: readRunHistory(events).workflowTasks.length,
    timers: events.filter((e) => e.timerStartedEventAttributes).length,
    children: events.filter((e) => e.startChildWorkflowExecutionInitiatedEventAttributes).length,
    signals: events.filter((e) => e.workflowExecutionSignaledEventAttributes).length,
    activityNames: events.flatMap((e) => {
      const name = e.activityTaskScheduledEventAttributes?.activityType?.name;
      return name ? [name] : [];
    }),
  };
}

/** The counts of a workflow's (latest) run. */
export async function historyCounts(temporal: Client, workflowId: string): Promise<HistoryCounts> {
  const history = await temporal.workflow.getHandle(workflowId).fetchHistory();
  return countHistory(history.events ?? []);
}
