import { and, asc, desc, eq, gt, inArray, notInArray, or, sql } from 'drizzle-orm';
import { terminalMigrationPhases } from '../domain/migration-phases.ts';
import type { Db } from './client.ts';
import { eventPage, type EventPageFilter } from './event-page.ts';
import { isUuid } from './inventory.ts';
import { events, guests, migrationAlerts, migrations, type MigrationAlert } from './schema.ts';

export type NewMigrationAlert = typeof migrationAlerts.$inferInsert;
export type MigrationAlertPatch = Partial<Omit<NewMigrationAlert, 'id' | 'name' | 'createdAt'>>;

/** The new rule, or 'exists' (nothing written) when its name is taken. */
export async function insertMigrationAlert(
  db: Db,
  row: NewMigrationAlert,
): Promise<MigrationAlert | 'exists'> {
  const [created] = await db
    .insert(migrationAlerts)
    .values(row)
    .onConflictDoNothing({ target: migrationAlerts.name })
    .returning();
  return created ?? 'exists';
}

export interface MigrationAlertFilter {
  enabled?: boolean;
  metric?: MigrationAlert['metric'];
  /** Keyset paging in the list's order (name, then id): the rules after this one, at most `limit`. */
  after?: { name: string; id: string } | null;
  limit?: number;
}

export function listMigrationAlerts(db: Db, filter: MigrationAlertFilter = {}) {
  const conditions = [
    filter.enabled !== undefined ? eq(migrationAlerts.enabled, filter.enabled) : undefined,
    filter.metric !== undefined ? eq(migrationAlerts.metric, filter.metric) : undefined,
    filter.after
      ? sql`(${migrationAlerts.name}, ${migrationAlerts.id}) > (${filter.after.name}, ${filter.after.id}::uuid)`
      : undefined,
  ].filter((c) => c !== undefined);
  const ordered = db
    .select()
    .from(migrationAlerts)
    .where(conditions.length > 0 ? and(...conditions) : undefined)
    .orderBy(asc(migrationAlerts.name), asc(migrationAlerts.id));
  return filter.limit === undefined ? ordered : ordered.limit(filter.limit);
}

/** The rules one page of events names. */
export const migrationAlertsByIds = (db: Db, ids: readonly string[]) =>
  ids.length === 0
    ? Promise.resolve([])
    : db
        .select()
        .from(migrationAlerts)
        .where(inArray(migrationAlerts.id, [...ids]));

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

/** A page of the events of one rule, or of every rule, newest first. */
export function migrationAlertEvents(db: Db, ruleId: string | null, filter: EventPageFilter) {
  return eventPage(
    db,
    and(eq(events.subjectKind, 'rule'), ruleId === null ? undefined : eq(events.subjectId, ruleId)),
    filter,
  );
}

export interface AlertMoveHistory {
  /** Request time of its latest alert-triggered migration, whatever the outcome (a guest that fails to move
   * is not retried every cycle either). */
  lastAt: Date;
  /** Hosts those migrations took it from since `since`, with when. */
  left: { host: string; at: Date }[];
}

/** Each guest's alert-triggered migrations: the latest, and the hosts it left since `since`. */
export async function alertMoveHistory(
  db: Db,
  guestIds: string[],
  since: Date,
): Promise<Map<string, AlertMoveHistory>> {
  if (guestIds.length === 0) return new Map();
  // One array parameter: a fleet's 20,000 ids as 20,000 bind parameters cost more than the query itself.
  const ofGuests = sql`${migrations.guestId} = any(${sql.param(guestIds)}::uuid[])`;
  const latest = await db
    .selectDistinctOn([migrations.guestId], { guestId: migrations.guestId, at: migrations.requestedAt })
    .from(migrations)
    .where(and(eq(migrations.trigger, 'alert'), ofGuests))
    .orderBy(migrations.guestId, desc(migrations.requestedAt));
  const recent = await db
    .select({ guestId: migrations.guestId, at: migrations.requestedAt, host: migrations.sourceHostId })
    .from(migrations)
    .where(
      and(
        eq(migrations.trigger, 'alert'),
        eq(migrations.phase, 'completed'),
        gt(migrations.requestedAt, since),
        ofGuests,
      ),
    );
  const history = new Map(
    latest.map((r) => [r.guestId, { lastAt: r.at, left: [] as { host: string; at: Date }[] }]),
  );
  for (const r of recent) history.get(r.guestId)?.left.push({ host: r.host, at: r.at });
  return history;
}

/**
 * What the alert planner needs of each running guest, in the guests' listing order (name, id): a fleet's 20,000
 * rows without their disks, networks and labels.
 */
export function runningGuestsToPlan(db: Db) {
  return db
    .select({
      id: guests.id,
      name: guests.name,
      hostId: guests.hostId,
      vcpus: guests.vcpus,
      memoryMb: guests.memoryMb,
    })
    .from(guests)
    .where(eq(guests.status, 'running'))
    .orderBy(asc(guests.name), asc(guests.id));
}

export type GuestToPlan = Awaited<ReturnType<typeof runningGuestsToPlan>>[number];

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
