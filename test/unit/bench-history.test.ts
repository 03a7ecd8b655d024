import { describe, expect, it } from 'vitest';
import {
  countHistory,
  LOCAL_ACTIVITY_MARKER,
  migrationMarks,
  readRunHistory,
  runCounts,
  splitWindow,
  type HistoryEvent,
} from '../../bench/live-migrate/history.ts';
import { activityTable } from '../../bench/live-migrate/report.ts';

const T0 = 1_764_640_000_000;

const time = (ms: number) => ({ seconds: Math.floor(ms / 1000), nanos: (ms % 1000) * 1e6 });

/** A JSON payload as the TS SDK's data converter and Core's as_json_payload write it. */
const json = (value: unknown) => ({
  metadata: { encoding: new TextEncoder().encode('json/plain') },
  data: new TextEncoder().encode(JSON.stringify(value)),
});

/**
 * The MarkerRecorded event Core records for a local activity (sdk-core: local_activity_state_machine.rs
 * builds it with build_local_activity_marker_details of protos/src/protos/mod.rs): marker name
 * 'core_local_activity', details.data = LocalActivityMarkerData as JSON (serde, snake_case, Timestamps as
 * { seconds, nanos }), details.result = the activity's result; a failed one has `failure` and no result.
 */
function localActivityMarker(
  id: number,
  at: number,
  task: number,
  seq: number,
  activityType: string,
  completeTime: number | null,
  outcome: { result: unknown } | { failure: string },
): HistoryEvent {
  const data = {
    seq,
    attempt: 1,
    activity_id: String(seq),
    activity_type: activityType,
    complete_time: completeTime === null ? null : time(completeTime),
    backoff: null,
    original_schedule_time: null,
  };
  return {
    eventId: id,
    eventTime: time(at),
    markerRecordedEventAttributes: {
      markerName: LOCAL_ACTIVITY_MARKER,
      details: {
        data: { payloads: [json(data)] },
        ...('result' in outcome ? { result: { payloads: [json(outcome.result)] } } : {}),
      },
      workflowTaskCompletedEventId: task,
      ...('failure' in outcome ? { failure: { message: outcome.failure } } : {}),
    },
  } as unknown as HistoryEvent;
}

const ev = (id: number, at: number, attributes: Record<string, unknown>): HistoryEvent =>
  ({ eventId: id, eventTime: time(T0 + at), ...attributes }) as unknown as HistoryEvent;

/** A live migration's run, cut down: two local steps, migrate, monitor, three local steps after. */
const events: HistoryEvent[] = [
  ev(1, 0, { workflowExecutionStartedEventAttributes: {} }),
  ev(2, 0, { workflowTaskScheduledEventAttributes: {} }),
  ev(3, 5, { workflowTaskStartedEventAttributes: { scheduledEventId: 2 } }),
  ev(4, 40, { workflowTaskCompletedEventAttributes: { scheduledEventId: 2, startedEventId: 3 } }),
  localActivityMarker(5, T0 + 40, 4, 1, 'setMigrationPhase', T0 + 15, { result: null }),
  localActivityMarker(6, T0 + 40, 4, 2, 'planLiveMigration', T0 + 35, { result: { ok: true } }),
  ev(7, 40, { activityTaskScheduledEventAttributes: { activityType: { name: 'startSourceMigration' } } }),
  ev(8, 45, { activityTaskStartedEventAttributes: { scheduledEventId: 7 } }),
  ev(9, 100, {
    activityTaskCompletedEventAttributes: {
      scheduledEventId: 7,
      result: { payloads: [json({ status: 'active', startedAt: T0 + 90 })] },
    },
  }),
  ev(10, 100, { workflowTaskScheduledEventAttributes: {} }),
  ev(11, 102, { workflowTaskStartedEventAttributes: { scheduledEventId: 10 } }),
  ev(12, 110, { workflowTaskCompletedEventAttributes: { scheduledEventId: 10, startedEventId: 11 } }),
  // A patch marker: not a local activity.
  ev(13, 110, { markerRecordedEventAttributes: { markerName: 'core_patch', details: {} } }),
  ev(14, 110, { activityTaskScheduledEventAttributes: { activityType: { name: 'monitorMigration' } } }),
  ev(15, 112, { activityTaskStartedEventAttributes: { scheduledEventId: 14 } }),
  ev(16, 5000, {
    activityTaskCompletedEventAttributes: {
      scheduledEventId: 14,
      result: { payloads: [json({ status: 'completed', startedAt: T0 + 90, totalTimeMs: 4880 })] },
    },
  }),
  ev(17, 5000, { workflowTaskScheduledEventAttributes: {} }),
  ev(18, 5002, { workflowTaskStartedEventAttributes: { scheduledEventId: 17 } }),
  ev(19, 5030, { workflowTaskCompletedEventAttributes: { scheduledEventId: 17, startedEventId: 18 } }),
  localActivityMarker(20, T0 + 5030, 19, 3, 'setMigrationPhase', T0 + 5010, { result: null }),
  localActivityMarker(21, T0 + 5030, 19, 4, 'recordMigrationEvent', T0 + 5018, { failure: 'db down' }),
  // No complete_time: the marker's event time stands in.
  localActivityMarker(22, T0 + 5030, 19, 5, 'commitMigration', null, { result: { committed: true } }),
  ev(23, 5031, { workflowExecutionCompletedEventAttributes: {} }),
];

describe('readRunHistory', () => {
  const history = readRunHistory(events);

  it('reads activities and workflow tasks as before, local activities apart', () => {
    expect(history.startedAt).toBe(T0);
    expect(history.closedAt).toBe(T0 + 5031);
    expect(history.activities.map((a) => a.name)).toEqual(['startSourceMigration', 'monitorMigration']);
    expect(history.activities[0]).toMatchObject({
      scheduledAt: T0 + 40,
      startedAt: T0 + 45,
      completedAt: T0 + 100,
      scheduledEventId: 7,
      completedEventId: 9,
      result: { status: 'active', startedAt: T0 + 90 },
    });
    expect(history.workflowTasks).toHaveLength(3);
    expect(history.eventCount).toBe(23);
    expect(history.lastEventId).toBe(23);
  });

  it("recognises local-activity markers: the type and complete_time from the marker's data", () => {
    expect(history.localActivities).toEqual([
      {
        name: 'setMigrationPhase',
        completedAt: T0 + 15,
        recordedAt: T0 + 40,
        runMs: 10, // from the workflow task's start (5)
        attempt: 1,
        failed: false,
        result: null,
        eventId: 5,
      },
      {
        name: 'planLiveMigration',
        completedAt: T0 + 35,
        recordedAt: T0 + 40,
        runMs: 20, // from the previous local activity of the task
        attempt: 1,
        failed: false,
        result: { ok: true },
        eventId: 6,
      },
      {
        name: 'setMigrationPhase',
        completedAt: T0 + 5010,
        recordedAt: T0 + 5030,
        runMs: 8,
        attempt: 1,
        failed: false,
        result: null,
        eventId: 20,
      },
      {
        name: 'recordMigrationEvent',
        completedAt: T0 + 5018,
        recordedAt: T0 + 5030,
        runMs: 8,
        attempt: 1,
        failed: true,
        result: undefined,
        eventId: 21,
      },
      {
        name: 'commitMigration',
        completedAt: T0 + 5030,
        recordedAt: T0 + 5030,
        runMs: 12,
        attempt: 1,
        failed: false,
        result: { committed: true },
        eventId: 22,
      },
    ]);
  });

  it('counts before migrate and after completion by event id', () => {
    const { start, monitor } = migrationMarks(history);
    expect(start?.name).toBe('startSourceMigration');
    expect(monitor?.completedAt).toBe(T0 + 5000);
    expect(runCounts(history)).toEqual({
      beforeMigrate: { workflowTasks: 1, activities: 0, localActivities: 2, events: 6 },
      afterCompletion: { workflowTasks: 1, activities: 0, localActivities: 3, events: 7 },
      whole: { workflowTasks: 3, activities: 2, localActivities: 5, events: 23 },
    });
  });

  it('keeps local activities out of the activity counts and lists them in the table', () => {
    const counts = countHistory(events);
    expect(counts.activities).toBe(2);
    expect(counts.localActivities).toBe(5);
    expect(counts.localActivityNames).toContain('commitMigration');
    const table = activityTable([history]);
    expect(table).toMatch(/setMigrationPhase \(local\)\s+2\s+9 ms\s+-/);
    expect(table).toMatch(/startSourceMigration\s+1\s+55 ms\s+5 ms/);
    expect(splitWindow(history, T0, T0 + 90).localActivityCount).toBe(2);
  });
});

describe('migrationMarks with the agent calls as local activities', () => {
  /** Prepare and start ran inside the first workflow task; the monitor is the first ordinary activity. */
  const localStart: HistoryEvent[] = [
    ev(1, 0, { workflowExecutionStartedEventAttributes: {} }),
    ev(2, 0, { workflowTaskScheduledEventAttributes: {} }),
    ev(3, 5, { workflowTaskStartedEventAttributes: { scheduledEventId: 2 } }),
    ev(4, 300, { workflowTaskCompletedEventAttributes: { scheduledEventId: 2, startedEventId: 3 } }),
    localActivityMarker(5, T0 + 300, 4, 1, 'planLiveMigration', T0 + 30, { result: { ok: true } }),
    localActivityMarker(6, T0 + 300, 4, 2, 'prepareDestination', T0 + 200, { result: { uri: 'tcp:x' } }),
    localActivityMarker(7, T0 + 300, 4, 3, 'startSourceMigration', T0 + 240, {
      result: { status: 'active', startedAt: T0 + 230 },
    }),
    ev(8, 300, { activityTaskScheduledEventAttributes: { activityType: { name: 'monitorMigration' } } }),
    ev(9, 301, { activityTaskStartedEventAttributes: { scheduledEventId: 8 } }),
    ev(10, 900, {
      activityTaskCompletedEventAttributes: {
        scheduledEventId: 8,
        result: { payloads: [json({ status: 'completed', startedAt: T0 + 230 })] },
      },
    }),
    ev(11, 905, { workflowExecutionCompletedEventAttributes: {} }),
  ];
  const history = readRunHistory(localStart);

  it('finds the start in its marker, begun when the previous local activity ended', () => {
    const { start } = migrationMarks(history);
    expect(start).toMatchObject({ name: 'startSourceMigration', local: true, eventId: 7 });
    expect(start?.startedAt).toBe(T0 + 200);
    expect((start?.result as { startedAt: number }).startedAt).toBe(T0 + 230);
  });

  it('counts the stretch before migrate up to the start marker: one workflow task, no activity', () => {
    expect(runCounts(history).beforeMigrate).toEqual({
      workflowTasks: 1,
      activities: 0,
      localActivities: 2,
      events: 6,
    });
  });
});
