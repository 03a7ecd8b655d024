import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it, inject } from 'vitest';
import { MigrationChanges } from '../../db/migration-changes.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/database.ts';
import { waitFor } from '../helpers/wait.ts';
import { oneHostSql } from '../helpers/sql-fixtures.ts';

const HOST = '00000000-0000-0000-0000-0000000000a1';
/** Long enough that a wait ending `changed` can only have been woken by the notification. */
const NEVER_MS = 60_000;

const FIXTURE = oneHostSql(HOST);

describe('migration changes (PostgreSQL LISTEN/NOTIFY)', () => {
  let database: TestDatabase;
  let client: pg.Client;
  let changes: MigrationChanges;

  const newMigration = async (phase = 'prechecks'): Promise<string> => {
    const id = randomUUID();
    // One active migration per guest: each gets its own.
    const guest = randomUUID();
    await client.query(
      `insert into guests (id, name, host_id, vcpus, memory_mb) values ($1, $2, $3, 1, 256)`,
      [guest, `g-${guest}`, HOST],
    );
    await client.query(
      `insert into migrations (id, kind, guest_id, source_host_id, workflow_id, phase)
       values ($1, 'live', $2, $3, $4, $5)`,
      [id, guest, HOST, `w-${id}`, phase],
    );
    return id;
  };

  beforeAll(async () => {
    database = await createTestDatabase(inject('postgresAdminUrl'));
    client = new pg.Client({ connectionString: database.url });
    await client.connect();
    await client.query(FIXTURE);
    changes = MigrationChanges.fromUrl(database.url);
    await changes.start();
  });
  afterAll(async () => {
    await changes?.close();
    await client?.end();
    await database?.drop();
  });

  it('wakes a waiter when its migration changes phase, and not for another migration', async () => {
    expect(changes.listening).toBe(true);
    const mine = await newMigration();
    const other = await newMigration();
    const waiting = changes.next(mine, NEVER_MS);
    const othersWait = changes.next(other, 200);
    await client.query(`update migrations set phase = 'preparing' where id = $1`, [mine]);
    expect(await waiting.changed).toBe('changed');
    expect(await othersWait.changed).toBe('timeout');
  });

  it('wakes on the pre-check verdict events, not on other events or a write that keeps the phase', async () => {
    const id = await newMigration();
    const quiet = changes.next(id, 500);
    await client.query(`update migrations set phase = 'prechecks', progress = '{}' where id = $1`, [id]);
    await client.query(
      `insert into events (subject_kind, subject_id, type, message) values ('migration', $1, 'copy_started', 'x')`,
      [id],
    );
    expect(await quiet.changed).toBe('timeout');

    for (const type of ['destination_chosen', 'precheck_failed']) {
      const waiting = changes.next(id, NEVER_MS);
      await client.query(
        `insert into events (subject_kind, subject_id, type, message) values ('migration', $1, $2, 'x')`,
        [id, type],
      );
      expect(await waiting.changed).toBe('changed');
    }
  });

  it('a change committed by a transaction wakes only once it commits', async () => {
    const id = await newMigration();
    const waiting = changes.next(id, NEVER_MS);
    let woken = false;
    void waiting.changed.then(() => (woken = true));
    await client.query('begin');
    await client.query(`update migrations set phase = 'failed' where id = $1`, [id]);
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(woken).toBe(false);
    await client.query('commit');
    expect(await waiting.changed).toBe('changed');
  });

  it('listens again after its connection is cut, and waits meanwhile end at their timeout', async () => {
    await client.query(
      `select pg_terminate_backend(pid) from pg_stat_activity
       where datname = current_database() and query ilike 'LISTEN%' and pid <> pg_backend_pid()`,
    );
    await waitFor('the listener notices the cut', async () => !changes.listening || null, {
      timeoutMs: 10_000,
    });
    const cut = await newMigration();
    const duringCut = changes.next(cut, 100);
    expect(await duringCut.changed).toBe('timeout');
    await waitFor('the listener listens again', async () => changes.listening || null, { timeoutMs: 10_000 });
    const id = await newMigration();
    const waiting = changes.next(id, NEVER_MS);
    await client.query(`update migrations set phase = 'preparing' where id = $1`, [id]);
    expect(await waiting.changed).toBe('changed');
  });

  it('cancel ends a wait at once', async () => {
    const waiting = changes.next(randomUUID(), NEVER_MS);
    waiting.cancel();
    expect(await waiting.changed).toBe('timeout');
  });
});
