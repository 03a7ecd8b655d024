import { randomBytes } from 'node:crypto';
import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it, inject } from 'vitest';
import { migrateDatabase, migrationsFolder } from '../../db/migrate.ts';

const INDEX_MIGRATION = '0004_one_active_migration_per_guest';

/** The committed migrations as they were before one active migration per guest was enforced. */
async function migrationsBeforeTheIndex(): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'vmmig-old-schema-'));
  await cp(migrationsFolder, dir, { recursive: true });
  const journalPath = path.join(dir, 'meta', '_journal.json');
  const journal = JSON.parse(await readFile(journalPath, 'utf8')) as {
    entries: { idx: number; tag: string }[];
  };
  const cut = journal.entries.findIndex((e) => e.tag === INDEX_MIGRATION);
  journal.entries = journal.entries.slice(0, cut);
  await writeFile(journalPath, JSON.stringify(journal));
  return dir;
}

/** An empty database of its own, and how to drop it. */
async function emptyDatabase(): Promise<{ url: string; drop(): Promise<void> }> {
  const adminUrl = inject('postgresAdminUrl');
  const name = `test_${randomBytes(6).toString('hex')}`;
  const admin = async (statement: string) => {
    const client = new pg.Client({ connectionString: adminUrl });
    await client.connect();
    try {
      await client.query(statement);
    } finally {
      await client.end();
    }
  };
  await admin(`CREATE DATABASE ${name}`);
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  return { url: url.toString(), drop: () => admin(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`) };
}

describe('one active migration per guest on a database from before the index', () => {
  let database: Awaited<ReturnType<typeof emptyDatabase>>;
  let oldFolder: string;

  beforeAll(async () => {
    oldFolder = await migrationsBeforeTheIndex();
    database = await emptyDatabase();
    await migrateDatabase(database.url, oldFolder);
  });
  afterAll(async () => {
    await database?.drop();
    if (oldFolder) await rm(oldFolder, { recursive: true, force: true });
  });

  it('keeps the newest active migration of a guest, fails the older ones, then creates the index', async () => {
    const client = new pg.Client({ connectionString: database.url });
    await client.connect();
    try {
      await client.query(`
        insert into clusters (id, name) values ('00000000-0000-0000-0000-00000000000c', 'c');
        insert into hosts (id, cluster_id, name, address, agent_url, driver, cpu_model, microcode, kernel,
          qemu_version, cpus, memory_mb, shared_storage_path)
        values ('00000000-0000-0000-0000-00000000000a', '00000000-0000-0000-0000-00000000000c', 'h', '127.0.0.1',
          'http://127.0.0.1:1', 'sim', 'cpu', '0x1', '6.1', '8.0', 4, 4096, '/tmp');
        insert into guests (id, name, host_id, vcpus, memory_mb)
        values ('00000000-0000-0000-0000-0000000000f1', 'g1', '00000000-0000-0000-0000-00000000000a', 1, 256),
               ('00000000-0000-0000-0000-0000000000f2', 'g2', '00000000-0000-0000-0000-00000000000a', 1, 256);
        insert into migrations (id, kind, guest_id, source_host_id, workflow_id, phase, requested_at) values
          ('00000000-0000-0000-0000-000000000001', 'live', '00000000-0000-0000-0000-0000000000f1',
            '00000000-0000-0000-0000-00000000000a', 'live-migrate-g1', 'pending', now() - interval '2 hours'),
          ('00000000-0000-0000-0000-000000000002', 'live', '00000000-0000-0000-0000-0000000000f1',
            '00000000-0000-0000-0000-00000000000a', 'live-migrate-g1', 'copying', now() - interval '1 hour'),
          ('00000000-0000-0000-0000-000000000003', 'live', '00000000-0000-0000-0000-0000000000f1',
            '00000000-0000-0000-0000-00000000000a', 'live-migrate-g1', 'completed', now() - interval '3 hours'),
          ('00000000-0000-0000-0000-000000000004', 'live', '00000000-0000-0000-0000-0000000000f2',
            '00000000-0000-0000-0000-00000000000a', 'live-migrate-g2', 'pending', now());
      `);
    } finally {
      await client.end();
    }

    await migrateDatabase(database.url);

    const check = new pg.Client({ connectionString: database.url });
    await check.connect();
    try {
      const rows = await check.query<{ id: string; phase: string; error: string | null }>(
        'select id, phase, error from migrations order by id',
      );
      expect(rows.rows.map((r) => [r.id.slice(-1), r.phase])).toEqual([
        ['1', 'failed'],
        ['2', 'copying'],
        ['3', 'completed'],
        ['4', 'pending'],
      ]);
      expect(rows.rows[0]?.error).toContain('superseded');
      await expect(
        check.query(`insert into migrations (kind, guest_id, source_host_id, workflow_id)
          values ('live', '00000000-0000-0000-0000-0000000000f1', '00000000-0000-0000-0000-00000000000a', 'x')`),
      ).rejects.toThrow(/migrations_one_active_per_guest/);
    } finally {
      await check.end();
    }
  });
});
