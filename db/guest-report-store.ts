import { and, eq, inArray, lte, notInArray, sql } from 'drizzle-orm';
import type { HostReport } from '../domain/guest-reports.ts';
import type { Db } from './client.ts';
import { guestReports, hosts, type GuestReport } from './schema.ts';

export interface StoredReport {
  /** Guest rows inserted or rewritten: a report where nothing changed writes none. */
  guestRowsWritten: number;
  /** Rows of guests the host no longer holds. */
  guestRowsRemoved: number;
}

/**
 * Keeps a host's report: the host's last report time, a row per guest written only when its state changed (a
 * heartbeat that appears or goes included) or its stored heartbeat is older than `heartbeatRefreshS`, and the rows
 * of guests the report no longer names.
 * Idempotent, and an older report that arrives late never writes over a newer one. null: no such host.
 */
export async function storeHostReport(
  db: Db,
  hostId: string,
  report: HostReport,
  options: { receivedAt: Date; heartbeatRefreshS: number },
): Promise<StoredReport | null> {
  const [host] = await db
    .update(hosts)
    .set({ lastReportAt: options.receivedAt, reportIntervalS: report.intervalS })
    .where(eq(hosts.id, hostId))
    .returning({ id: hosts.id });
  if (!host) return null;
  const takenAt = new Date(report.at);
  let guestRowsWritten = 0;
  if (report.guests.length > 0) {
    const written = await db
      .insert(guestReports)
      .values(
        report.guests.map((g) => ({
          hostId,
          guestId: g.id,
          status: g.status,
          hypervisorStatus: g.hypervisorStatus,
          pid: g.pid,
          heartbeatCounter: g.heartbeat?.counter ?? null,
          heartbeatAt: g.heartbeat ? new Date(g.heartbeat.at) : null,
          reportedAt: takenAt,
        })),
      )
      .onConflictDoUpdate({
        target: [guestReports.hostId, guestReports.guestId],
        set: {
          status: sql`excluded.status`,
          hypervisorStatus: sql`excluded.hypervisor_status`,
          pid: sql`excluded.pid`,
          heartbeatCounter: sql`excluded.heartbeat_counter`,
          heartbeatAt: sql`excluded.heartbeat_at`,
          reportedAt: sql`excluded.reported_at`,
        },
        setWhere: sql`${guestReports.reportedAt} < excluded.reported_at and (
          (${guestReports.status}, ${guestReports.hypervisorStatus}, ${guestReports.pid},
            ${guestReports.heartbeatCounter} is null)
            is distinct from (excluded.status, excluded.hypervisor_status, excluded.pid,
            excluded.heartbeat_counter is null)
          or (${guestReports.heartbeatCounter} is distinct from excluded.heartbeat_counter
            and ${guestReports.reportedAt} <= excluded.reported_at - make_interval(secs => ${options.heartbeatRefreshS})))`,
      })
      .returning({ guestId: guestReports.guestId });
    guestRowsWritten = written.length;
  }
  const held = report.guests.map((g) => g.id);
  const removed = await db
    .delete(guestReports)
    .where(
      and(
        eq(guestReports.hostId, hostId),
        lte(guestReports.reportedAt, takenAt),
        held.length > 0 ? notInArray(guestReports.guestId, held) : undefined,
      ),
    )
    .returning({ guestId: guestReports.guestId });
  return { guestRowsWritten, guestRowsRemoved: removed.length };
}

/** The reports of these guests, on whichever hosts hold them. */
export async function guestReportsOf(db: Db, guestIds: readonly string[]): Promise<GuestReport[]> {
  if (guestIds.length === 0) return [];
  return db
    .select()
    .from(guestReports)
    .where(inArray(guestReports.guestId, [...guestIds]));
}
