import { and, asc, eq, inArray, lt, ne, notExists, sql } from 'drizzle-orm';
import { terminalMigrationPhases } from '../domain/migration-phases.ts';
import type { Db } from './client.ts';
import { events, migrations, reservations } from './schema.ts';

/**
 * The DELETEs of retention (domain/retention.ts says what is prunable). Each takes at most `limit` rows and
 * returns how many went; a repeated call deletes nothing twice, so a run stopped anywhere just goes on.
 */

const finishedBefore = (cutoff: Date) =>
  and(inArray(migrations.phase, [...terminalMigrationPhases]), lt(migrations.finishedAt, cutoff));

/** Ids of migrations over and ended before the cutoff, oldest first. */
export async function finishedMigrationIds(db: Db, cutoff: Date, limit: number): Promise<string[]> {
  const rows = await db
    .select({ id: migrations.id })
    .from(migrations)
    .where(finishedBefore(cutoff))
    .orderBy(asc(migrations.finishedAt))
    .limit(limit);
  return rows.map((r) => r.id);
}

/** Events about these migrations, up to `limit` of them. */
export async function deleteEventsOfMigrations(db: Db, ids: string[], limit: number): Promise<number> {
  if (ids.length === 0) return 0;
  const batch = db
    .select({ id: events.id })
    .from(events)
    .where(and(eq(events.subjectKind, 'migration'), inArray(events.subjectId, ids)))
    .limit(limit);
  return rowCount(await db.delete(events).where(inArray(events.id, batch)));
}

/** Reservations of these migrations if any is left (a finished one's should be gone already). */
export async function deleteReservationsOf(db: Db, ids: string[]): Promise<number> {
  if (ids.length === 0) return 0;
  return rowCount(await db.delete(reservations).where(inArray(reservations.migrationId, ids)));
}

/** These migrations, each only if it is still over and ended before the cutoff. */
export async function deleteFinishedMigrations(db: Db, ids: string[], cutoff: Date): Promise<number> {
  if (ids.length === 0) return 0;
  return rowCount(
    await db.delete(migrations).where(and(inArray(migrations.id, ids), finishedBefore(cutoff))),
  );
}

/** Host, guest, rule (any but migration) events from before the cutoff, up to `limit`. */
export async function deleteOldEvents(db: Db, cutoff: Date, limit: number): Promise<number> {
  const batch = db
    .select({ id: events.id })
    .from(events)
    .where(and(lt(events.at, cutoff), ne(events.subjectKind, 'migration')))
    .limit(limit);
  return rowCount(await db.delete(events).where(inArray(events.id, batch)));
}

/** Migration events from before the cutoff whose migration row no longer exists, up to `limit`. */
export async function deleteOrphanMigrationEvents(db: Db, cutoff: Date, limit: number): Promise<number> {
  const ownMigration = db
    .select({ one: sql`1` })
    .from(migrations)
    .where(sql`${migrations.id}::text = ${events.subjectId}`);
  const batch = db
    .select({ id: events.id })
    .from(events)
    .where(and(lt(events.at, cutoff), eq(events.subjectKind, 'migration'), notExists(ownMigration)))
    .limit(limit);
  return rowCount(await db.delete(events).where(inArray(events.id, batch)));
}

function rowCount(result: { rowCount: number | null }): number {
  return result.rowCount ?? 0;
}
