import { and, asc, desc, eq, gt, inArray, max, notInArray, or } from 'drizzle-orm';
import { terminalMigrationPhases } from '../domain/migration-phases.ts';
import type { Db } from './client.ts';
import { isUuid } from './inventory.ts';
import { events, migrationAlerts, migrations, type MigrationAlert } from './schema.ts';

export type NewMigrationAlert = typeof migrationAlerts.$inferInsert;
export type MigrationAlertPatch = Partial<Omit<NewMigrationAlert, 'id' | 'name' | 'createdAt'>>;

const UNIQUE_VIOLATION = '23505';

export async function insertMigrationAlert(
  db: Db,
  row: NewMigrationAlert,
): Promise<MigrationAlert | 'exists'> {
  try {
    const [created] = await db.insert(migrationAlerts).values(row).returning();
    return created!;
  } catch (err) {
    if ((err as { cause?: { code?: string }; code?: string }).code === UNIQUE_VIOLATION) return 'exists';
    if ((err as { cause?: { code?: string } }).cause?.code === UNIQUE_VIOLATION) return 'exists';
    throw err;
  }
}

export const listMigrationAlerts = (db: Db) =>
  db.select().from(migrationAlerts).orderBy(asc(migrationAlerts.name));

/** By id or by name, as every other resource. */
export async function findMigrationAlert(db: Db, idOrName: string): Promise<MigrationAlert | undefined> {
  const [row] = await db
    .select()
    .from(migrationAlerts)
    .where(isUuid(idOrName) ? eq(migrationAlerts.id, idOrName) : eq(migrationAlerts.name, idOrName));
  return row;
}

export async function updateMigrationAlert(
  db: Db,
  id: string,
  patch: MigrationAlertPatch,
): Promise<MigrationAlert | undefined> {
  const [row] = await db
    .update(migrationAlerts)
    .set({ ...patch, updatedAt: new Date() })
    .where(eq(migrationAlerts.id, id))
    .returning();
  return row;
}

export async function deleteMigrationAlert(db: Db, id: string): Promise<void> {
  await db.delete(migrationAlerts).where(eq(migrationAlerts.id, id));
}

export function migrationAlertEvents(db: Db, ruleId: string, limit = 200) {
  return db
    .select()
    .from(events)
    .where(and(eq(events.subjectKind, 'rule'), eq(events.subjectId, ruleId)))
    .orderBy(desc(events.at), desc(events.id))
    .limit(limit);
}

/** Events of every rule, newest first. */
export function allMigrationAlertEvents(db: Db, limit = 200) {
  return db
    .select()
    .from(events)
    .where(eq(events.subjectKind, 'rule'))
    .orderBy(desc(events.at), desc(events.id))
    .limit(limit);
}

/**
 * When each guest was last moved by a rule: the request time of its latest alert-triggered migration,
 * whatever its outcome, so that a guest that fails to move is not retried every cycle either.
 */
export async function lastAlertMoves(db: Db, guestIds: string[]): Promise<Map<string, Date>> {
  if (guestIds.length === 0) return new Map();
  const rows = await db
    .select({ guestId: migrations.guestId, at: max(migrations.requestedAt) })
    .from(migrations)
    .where(and(eq(migrations.trigger, 'alert'), inArray(migrations.guestId, guestIds)))
    .groupBy(migrations.guestId);
  return new Map(rows.filter((r) => r.at !== null).map((r) => [r.guestId, r.at!]));
}

/** Guests with a migration that has not ended. */
export async function guestsMigrating(db: Db): Promise<Set<string>> {
  const rows = await db
    .selectDistinct({ guestId: migrations.guestId })
    .from(migrations)
    .where(notInArray(migrations.phase, [...terminalMigrationPhases]));
  return new Set(rows.map((r) => r.guestId));
}

/** Hosts a migration ran to or from since `since`, or runs to or from now. */
export async function hostsInRecentMigrations(db: Db, since: Date): Promise<Set<string>> {
  const rows = await db
    .select({ source: migrations.sourceHostId, destination: migrations.destinationHostId })
    .from(migrations)
    .where(or(notInArray(migrations.phase, [...terminalMigrationPhases]), gt(migrations.finishedAt, since)));
  const hosts = new Set<string>();
  for (const row of rows) {
    hosts.add(row.source);
    if (row.destination) hosts.add(row.destination);
  }
  return hosts;
}
