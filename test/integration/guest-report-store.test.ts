import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it, inject } from 'vitest';
import { storeHostReport } from '../../db/guest-report-store.ts';
import { heartbeatRefreshS, type GuestReportEntry, type HostReport } from '../../domain/guest-reports.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/database.ts';
import { oneHostSql } from '../helpers/sql-fixtures.ts';

const HOST = '00000000-0000-0000-0000-0000000000a2';
const T0 = Date.parse('2026-12-02T10:00:00.000Z');

const report = (secondsAfter: number, heartbeat: number | null): HostReport => {
  const at = new Date(T0 + secondsAfter * 1000).toISOString();
  const guest: GuestReportEntry = {
    id: 'g1',
    status: 'running',
    hypervisorStatus: 'running',
    pid: 100,
    heartbeat: heartbeat === null ? null : { counter: heartbeat, at },
  };
  return { intervalS: 10, at, guests: [guest] };
};

describe('storeHostReport: which reports rewrite a guest row', () => {
  let database: TestDatabase;
  const store = (r: HostReport) =>
    storeHostReport(database.db, HOST, r, {
      receivedAt: new Date(r.at),
      heartbeatRefreshS: heartbeatRefreshS(r),
    });

  beforeAll(async () => {
    database = await createTestDatabase(inject('postgresAdminUrl'));
    const client = new pg.Client({ connectionString: database.url });
    await client.connect();
    await client.query(oneHostSql(HOST));
    await client.end();
  });
  afterAll(async () => {
    await database?.drop();
  });

  it('writes a first heartbeat at once, a moving one only once a minute, and a heartbeat gone at once', async () => {
    expect((await store(report(0, null)))?.guestRowsWritten).toBe(1);
    // A guest just started, or just arrived by migration, shows it is alive at the next report.
    expect((await store(report(1, 1)))?.guestRowsWritten).toBe(1);
    expect((await store(report(2, 2)))?.guestRowsWritten).toBe(0);
    expect((await store(report(61, 61)))?.guestRowsWritten).toBe(1);
    expect((await store(report(62, null)))?.guestRowsWritten).toBe(1);
    expect((await store(report(63, null)))?.guestRowsWritten).toBe(0);
  });
});
