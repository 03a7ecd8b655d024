import { randomUUID } from 'node:crypto';
import { Client, Connection, ScheduleOverlapPolicy } from '@temporalio/client';
import { msToTs } from '@temporalio/common/lib/time.js';
import { NativeConnection, Worker } from '@temporalio/worker';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it, inject } from 'vitest';
import { retentionActivities } from '../../activities/retention-activities.ts';
import { events, migrations, reservations } from '../../db/schema.ts';
import {
  isPrunableEvent,
  isPrunableMigration,
  PRUNE_HISTORY_EVERY_MS,
  PRUNE_HISTORY_SCHEDULE_ID,
  retentionCutoff,
  retentionSeconds,
  type PruneHistoryResult,
} from '../../domain/retention.ts';
import { applyRetention, deletePruneSchedule, type RetentionHome } from '../../workers/retention-schedule.ts';
import { workflowsPath } from '../../workers/worker.ts';
import { pruneHistoryCycle } from '../../workflows/prune-history.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/database.ts';
import { oneHostSql } from '../helpers/sql-fixtures.ts';

const HOST = '00000000-0000-0000-0000-00000000000a';
const ids = {
  oldCompleted: randomUUID(),
  oldFailedMany: randomUUID(),
  recentCompleted: randomUUID(),
  oldActive: randomUUID(),
  goneMigration: randomUUID(),
  recentlyGoneMigration: randomUUID(),
};

/**
 * Old and new history around a 30-day retention, every case of domain/retention.ts: finished migrations long
 * over (one with 6,000 events, past one batch), one over recently but requested long ago, an active one
 * requested two months ago, old and new events of hosts, guests and rules (12,000 old host events: several
 * batches), and events of migrations whose row is gone.
 */
const FIXTURE = `${oneHostSql(HOST)}
  insert into guests (id, name, host_id, vcpus, memory_mb) values
    ('00000000-0000-0000-0000-0000000000f1', 'g1', '${HOST}', 1, 256),
    ('00000000-0000-0000-0000-0000000000f2', 'g2', '${HOST}', 1, 256);
  insert into migrations (id, kind, guest_id, source_host_id, workflow_id, phase, requested_at, finished_at) values
    ('${ids.oldCompleted}', 'live', '00000000-0000-0000-0000-0000000000f1', '${HOST}', 'w1', 'completed',
      now() - interval '41 days', now() - interval '40 days'),
    ('${ids.oldFailedMany}', 'cold', '00000000-0000-0000-0000-0000000000f1', '${HOST}', 'w2', 'failed',
      now() - interval '36 days', now() - interval '35 days'),
    ('${ids.recentCompleted}', 'live', '00000000-0000-0000-0000-0000000000f1', '${HOST}', 'w3', 'completed',
      now() - interval '45 days', now() - interval '5 days'),
    ('${ids.oldActive}', 'live', '00000000-0000-0000-0000-0000000000f2', '${HOST}', 'w4', 'copying',
      now() - interval '60 days', null);
  insert into reservations (migration_id, host_id, memory_mb, vcpus) values
    ('${ids.oldCompleted}', '${HOST}', 256, 1),
    ('${ids.oldActive}', '${HOST}', 256, 1);
  insert into events (subject_kind, subject_id, type, message, at) values
    ('migration', '${ids.oldCompleted}', 'phase', 'old', now() - interval '41 days'),
    ('migration', '${ids.oldCompleted}', 'phase', 'old', now() - interval '40 days'),
    ('migration', '${ids.oldCompleted}', 'note', 'written late', now() - interval '1 day'),
    ('migration', '${ids.recentCompleted}', 'phase', 'old', now() - interval '45 days'),
    ('migration', '${ids.recentCompleted}', 'phase', 'new', now() - interval '5 days'),
    ('migration', '${ids.oldActive}', 'phase', 'old', now() - interval '60 days'),
    ('migration', '${ids.goneMigration}', 'never_started', 'old', now() - interval '40 days'),
    ('migration', 'not-a-uuid', 'odd', 'old', now() - interval '40 days'),
    ('migration', '${ids.recentlyGoneMigration}', 'never_started', 'new', now() - interval '1 day'),
    ('host', '${HOST}', 'online', 'old', now() - interval '31 days'),
    ('host', '${HOST}', 'online', 'new', now() - interval '29 days'),
    ('guest', '00000000-0000-0000-0000-0000000000f1', 'created', 'old', now() - interval '40 days'),
    ('rule', '${randomUUID()}', 'skipped', 'old', now() - interval '100 days'),
    ('rule', '${randomUUID()}', 'skipped', 'new', now());
  insert into events (subject_kind, subject_id, type, message, at)
    select 'migration', '${ids.oldFailedMany}', 'progress', 'many', now() - interval '35 days'
    from generate_series(1, 6000);
  insert into events (subject_kind, subject_id, type, message, at)
    select 'host', '${HOST}', 'flap', 'many', now() - interval '50 days' from generate_series(1, 12000);
`;

describe('retention: pruning old history and the Temporal namespace to match', () => {
  let database: TestDatabase;
  let connection: Connection;
  let temporal: Client;
  let home: RetentionHome;
  let originalRetentionSeconds: number | undefined;
  const namespace = inject('temporalNamespace');
  const logs: string[] = [];

  const namespaceRetentionSeconds = async () => {
    const described = await temporal.workflowService.describeNamespace({ namespace });
    return Number(described.config?.workflowExecutionRetentionTtl?.seconds?.toString());
  };

  beforeAll(async () => {
    database = await createTestDatabase(inject('postgresAdminUrl'));
    connection = await Connection.connect({ address: inject('temporalAddress') });
    temporal = new Client({ connection, namespace });
    home = { temporal, taskQueue: `test-${randomUUID()}`, log: (line) => logs.push(line) };
    originalRetentionSeconds = await namespaceRetentionSeconds();
    const client = new pg.Client({ connectionString: database.url });
    await client.connect();
    try {
      await client.query(FIXTURE);
    } finally {
      await client.end();
    }
  });

  afterAll(async () => {
    if (temporal) {
      await deletePruneSchedule(home).catch(() => undefined);
      if (originalRetentionSeconds) {
        await temporal.workflowService.updateNamespace({
          namespace,
          config: { workflowExecutionRetentionTtl: msToTs(originalRetentionSeconds * 1000) },
        });
      }
    }
    await connection?.close();
    await database?.drop();
  });

  it('deletes exactly what is prunable, in batches, going on where a run out of budget stopped', async () => {
    const db = database.db;
    const cutoff = retentionCutoff(new Date(), 30);
    const migrationsBefore = await db.select().from(migrations);
    const eventsBefore = await db.select().from(events);
    const migrationById = new Map(migrationsBefore.map((m) => [m.id, m]));
    const expectedMigrations = migrationsBefore.filter((m) => !isPrunableMigration(m, cutoff));
    const expectedEvents = eventsBefore.filter(
      (e) => !isPrunableEvent(e, migrationById.get(e.subjectId), cutoff),
    );
    // The fixture is what its comment says, so the comparison below means something.
    expect(expectedMigrations.map((m) => m.id).sort()).toEqual([ids.recentCompleted, ids.oldActive].sort());
    expect(expectedEvents.map((e) => e.message).sort()).toEqual(
      ['new', 'new', 'new', 'new', 'old', 'old'].sort(),
    );

    const { pruneHistory } = retentionActivities({ db });
    const first = await pruneHistory({ retentionDays: 30, budgetMs: 0 });
    expect(first).toMatchObject({ done: false, events: 5000, migrations: 0, reservations: 0 });
    const rest = await pruneHistory({ retentionDays: 30 });
    expect(rest.done).toBe(true);
    expect(first.events + rest.events).toBe(eventsBefore.length - expectedEvents.length);
    expect(rest).toMatchObject({ migrations: 2, reservations: 1 });

    const ordered = <T extends { id: unknown }>(rows: T[]) =>
      rows.map((r) => r.id).sort((a, b) => String(a).localeCompare(String(b)));
    expect(ordered(await db.select().from(migrations))).toEqual(ordered(expectedMigrations));
    expect(ordered(await db.select().from(events))).toEqual(ordered(expectedEvents));
    expect((await db.select().from(reservations)).map((r) => r.migrationId)).toEqual([ids.oldActive]);

    const again = await pruneHistory({ retentionDays: 30 });
    expect(again).toMatchObject({ done: true, events: 0, migrations: 0, reservations: 0 });
  });

  it('runs as the pruneHistoryCycle workflow on a worker', async () => {
    const client = new pg.Client({ connectionString: database.url });
    await client.connect();
    try {
      await client.query(`insert into events (subject_kind, subject_id, type, message, at)
        values ('host', '${HOST}', 'online', 'old', now() - interval '3 days')`);
    } finally {
      await client.end();
    }
    const workerConnection = await NativeConnection.connect({ address: inject('temporalAddress') });
    const worker = await Worker.create({
      connection: workerConnection,
      namespace,
      taskQueue: home.taskQueue,
      workflowsPath,
      activities: retentionActivities({ db: database.db }),
    });
    let result: PruneHistoryResult;
    try {
      result = await worker.runUntil(
        temporal.workflow.execute(pruneHistoryCycle, {
          taskQueue: home.taskQueue,
          workflowId: `prune-history-${randomUUID()}`,
          args: [{ retentionDays: 2 }],
        }),
      );
    } finally {
      await workerConnection.close();
    }
    // Two days back: that event and the 29-day-old host event, and the migration over 5 days ago with its two.
    expect(result).toMatchObject({ done: true, events: 4, migrations: 1, reservations: 0 });
    expect((await database.db.select().from(migrations)).map((m) => m.id)).toEqual([ids.oldActive]);
  });

  it('creates the daily schedule and sets the namespace retention at start, idempotently', async () => {
    const first = await applyRetention(home, 30);
    expect(['created', 'updated']).toContain(first.schedule);
    expect(['set', 'unchanged']).toContain(first.namespace);
    expect(await namespaceRetentionSeconds()).toBe(retentionSeconds(30));
    expect(await applyRetention(home, 30)).toEqual({ schedule: 'unchanged', namespace: 'unchanged' });

    const described = await temporal.schedule.getHandle(PRUNE_HISTORY_SCHEDULE_ID).describe();
    expect(described.spec.intervals?.map((i) => i.every)).toEqual([PRUNE_HISTORY_EVERY_MS]);
    expect(described.policies.overlap).toBe(ScheduleOverlapPolicy.SKIP);
    expect(described.action).toMatchObject({
      type: 'startWorkflow',
      workflowType: 'pruneHistoryCycle',
      taskQueue: home.taskQueue,
      args: [{ retentionDays: 30 }],
    });

    // A day is Temporal's minimum and ours.
    expect(await applyRetention(home, 1)).toEqual({ schedule: 'updated', namespace: 'set' });
    expect(await namespaceRetentionSeconds()).toBe(retentionSeconds(1));
    const updated = await temporal.schedule.getHandle(PRUNE_HISTORY_SCHEDULE_ID).describe();
    expect(updated.action).toMatchObject({ args: [{ retentionDays: 1 }] });

    expect(await applyRetention(home, null)).toEqual({ schedule: 'deleted', namespace: 'left' });
    expect(await namespaceRetentionSeconds()).toBe(retentionSeconds(1));
    expect(await applyRetention(home, null)).toEqual({ schedule: 'absent', namespace: 'left' });
    expect(logs.filter((line) => line.startsWith('could not'))).toEqual([]);
  });
});
