import { and, asc, desc, eq, getTableColumns, inArray, notInArray, or, sql } from 'drizzle-orm';
import type { Db } from './client.ts';
import { isTerminalPhase, terminalMigrationPhases, type MigrationPhase } from '../domain/migration-phases.ts';
import type { Requester } from '../domain/requester.ts';
import { recordEvent } from './inventory.ts';
import {
  events,
  guests,
  hosts,
  migrations,
  ONE_ACTIVE_MIGRATION_PER_GUEST,
  reservations,
  type Migration,
} from './schema.ts';

export type NewMigration = typeof migrations.$inferInsert;

export async function insertMigration(db: Db, row: NewMigration): Promise<Migration> {
  const [created] = await db.insert(migrations).values(row).returning();
  if (!created) throw new Error('migration row was not stored');
  return created;
}

/** Inserts an active migration, or answers 'guest-busy' when the guest already has one (the unique index). */
export async function insertActiveMigration(db: Db, row: NewMigration): Promise<Migration | 'guest-busy'> {
  const inserted = await insertActiveMigrations(db, [row]);
  return inserted === 'guest-busy' ? inserted : inserted[0]!;
}

/** PostgreSQL's unique_violation on the named index, wherever drizzle wrapped it. */
function violatesConstraint(err: unknown, constraint: string): boolean {
  for (let e: unknown = err; e instanceof Error; e = e.cause) {
    const pgError = e as { code?: unknown; constraint?: unknown };
    if (pgError.code === '23505' && pgError.constraint === constraint) return true;
  }
  return false;
}

/** Ends a migration whose workflow never ran, recording why as its error and as an event. */
export async function closeUnstartedMigration(
  db: Db,
  id: string,
  phase: 'failed' | 'cancelled',
  reason: string,
  /** Who closed it (a cancel request); absent: the migration's own requester is recorded. */
  requestedBy?: Requester,
): Promise<void> {
  await setMigrationPhase(db, id, phase, { error: reason });
  await recordEvent(db, {
    subjectKind: 'migration',
    subjectId: id,
    type: phase === 'failed' ? 'never_started' : 'cancelled',
    level: phase === 'failed' ? 'error' : 'info',
    message: reason,
    ...(requestedBy ? { requestedBy } : {}),
  });
}

export async function findMigration(db: Db, id: string): Promise<Migration | undefined> {
  const [row] = await db.select().from(migrations).where(eq(migrations.id, id));
  return row;
}

export async function deleteMigration(db: Db, id: string): Promise<void> {
  await db.delete(migrations).where(eq(migrations.id, id));
}

/** The active migration of each of these guests that has one (the newest, should there be two), by guest id. */
export async function activeMigrationsOfGuests(
  db: Db,
  guestIds: readonly string[],
): Promise<Map<string, Migration>> {
  if (guestIds.length === 0) return new Map();
  const rows = await db
    .select()
    .from(migrations)
    .where(
      and(
        inArray(migrations.guestId, [...guestIds]),
        notInArray(migrations.phase, [...terminalMigrationPhases]),
      ),
    )
    .orderBy(asc(migrations.requestedAt));
  return new Map(rows.map((row) => [row.guestId, row]));
}

/**
 * Inserts active migrations in one statement, or answers 'guest-busy' (nothing written) when one of the guests
 * already has one (the unique index).
 */
export async function insertActiveMigrations(
  db: Db,
  rows: readonly NewMigration[],
): Promise<Migration[] | 'guest-busy'> {
  if (rows.length === 0) return [];
  try {
    return await db
      .insert(migrations)
      .values([...rows])
      .returning();
  } catch (err) {
    if (violatesConstraint(err, ONE_ACTIVE_MIGRATION_PER_GUEST)) return 'guest-busy';
    throw err;
  }
}

export async function activeMigrationOfGuest(db: Db, guestId: string): Promise<Migration | undefined> {
  return (await activeMigrationsOfGuests(db, [guestId])).get(guestId);
}

export interface MigrationFilter {
  groupId?: string;
  guestId?: string;
  hostId?: string;
  status?: 'running' | 'completed' | 'failed' | 'cancelled';
  /** Only migrations of guests of these projects (a scoped token's view); undefined: every project. */
  projects?: string[];
  limit?: number;
  /** Keyset paging in the list's order (newest first): the migrations older than this one. */
  before?: { requestedAt: string; id: string } | null;
}

export function listMigrations(db: Db, filter: MigrationFilter = {}) {
  const conditions = [
    filter.groupId !== undefined ? eq(migrations.groupId, filter.groupId) : undefined,
    filter.guestId !== undefined ? eq(migrations.guestId, filter.guestId) : undefined,
    filter.hostId !== undefined
      ? or(eq(migrations.sourceHostId, filter.hostId), eq(migrations.destinationHostId, filter.hostId))
      : undefined,
    filter.projects !== undefined
      ? inArray(
          migrations.guestId,
          db.select({ id: guests.id }).from(guests).where(inArray(guests.project, filter.projects)),
        )
      : undefined,
    filter.status === 'running'
      ? notInArray(migrations.phase, [...terminalMigrationPhases])
      : filter.status !== undefined
        ? eq(migrations.phase, filter.status)
        : undefined,
    filter.before
      ? sql`(${migrations.requestedAt}, ${migrations.id}) < (${filter.before.requestedAt}::timestamptz, ${filter.before.id}::uuid)`
      : undefined,
  ].filter((c) => c !== undefined);
  return db
    .select({
      ...getTableColumns(migrations),
      // The page key at the database's precision (microseconds); a JS Date would round it to milliseconds.
      pageKey: sql<string>`${migrations.requestedAt}::text`,
    })
    .from(migrations)
    .where(conditions.length > 0 ? and(...conditions) : undefined)
    .orderBy(desc(migrations.requestedAt), desc(migrations.id))
    .limit(filter.limit ?? 100);
}

/** Moves a migration to a phase and stamps when the previous phase ended and this one began (DB clock). */
export async function setMigrationPhase(
  db: Db,
  id: string,
  phase: MigrationPhase,
  extra: Partial<
    Pick<Migration, 'destinationHostId' | 'error' | 'checks' | 'progress' | 'resolvedPolicy'>
  > = {},
): Promise<void> {
  const nowMs = sql`(extract(epoch from clock_timestamp()) * 1000)::bigint`;
  await db
    .update(migrations)
    .set({
      ...extra,
      phase,
      // Close the open phase (the current one) and open the new one, unless we are already in it (retries).
      timings: sql`case when ${migrations.phase} = ${phase} then ${migrations.timings} else
        jsonb_set(
          case when ${migrations.timings} ? ${migrations.phase}
            then jsonb_set(${migrations.timings}, array[${migrations.phase}::text, 'endedAt'], to_jsonb(${nowMs}))
            else ${migrations.timings} end,
          array[${phase}::text],
          jsonb_build_object('startedAt', ${nowMs})
        ) end`,
      finishedAt: isTerminalPhase(phase) ? sql`now()` : undefined,
    })
    .where(and(eq(migrations.id, id), notInArray(migrations.phase, [...terminalMigrationPhases])));
}

export async function saveProgress(db: Db, id: string, progress: Record<string, unknown>): Promise<void> {
  await db.update(migrations).set({ progress }).where(eq(migrations.id, id));
}

export function migrationEvents(db: Db, id: string) {
  return db
    .select()
    .from(events)
    .where(and(eq(events.subjectKind, 'migration'), eq(events.subjectId, id)))
    .orderBy(asc(events.at), asc(events.id));
}

export interface HostLoad {
  hostId: string;
  committedMemoryMb: number;
  committedVcpus: number;
}

/** Memory and vCPUs promised on each host: its guests plus reservations of migrations in flight to it. */
export async function hostLoads(db: Db, hostIds: string[]): Promise<Map<string, HostLoad>> {
  const loads = new Map<string, HostLoad>(
    hostIds.map((id) => [id, { hostId: id, committedMemoryMb: 0, committedVcpus: 0 }]),
  );
  if (hostIds.length === 0) return loads;
  const placed = await db
    .select({
      hostId: guests.hostId,
      memoryMb: sql<number>`coalesce(sum(${guests.memoryMb}), 0)::int`,
      vcpus: sql<number>`coalesce(sum(${guests.vcpus}), 0)::int`,
    })
    .from(guests)
    .where(inArray(guests.hostId, hostIds))
    .groupBy(guests.hostId);
  const reserved = await db
    .select({
      hostId: reservations.hostId,
      memoryMb: sql<number>`coalesce(sum(${reservations.memoryMb}), 0)::int`,
      vcpus: sql<number>`coalesce(sum(${reservations.vcpus}), 0)::int`,
    })
    .from(reservations)
    .where(inArray(reservations.hostId, hostIds))
    .groupBy(reservations.hostId);
  for (const row of [...placed, ...reserved]) {
    const load = loads.get(row.hostId);
    if (!load) continue;
    load.committedMemoryMb += row.memoryMb;
    load.committedVcpus += row.vcpus;
  }
  return loads;
}

export type ReservationOutcome =
  { reserved: true } | { reserved: false; freeMemoryMb: number; freeVcpus: number };

/**
 * Holds capacity on the destination for a migration. The host row is locked so that two migrations choosing
 * the same host at once cannot both take its last free memory. Idempotent per migration.
 */
export async function reserveCapacity(
  db: Db,
  input: { migrationId: string; hostId: string; memoryMb: number; vcpus: number; cpuAllocationRatio: number },
): Promise<ReservationOutcome> {
  return db.transaction(async (tx) => {
    const [host] = await tx.select().from(hosts).where(eq(hosts.id, input.hostId)).for('update');
    if (!host) throw new Error(`host ${input.hostId} not found`);
    const [existing] = await tx
      .select()
      .from(reservations)
      .where(eq(reservations.migrationId, input.migrationId));
    if (existing) return { reserved: true };
    const load = (await hostLoads(tx as unknown as Db, [host.id])).get(host.id);
    const freeMemoryMb = host.memoryMb - (load?.committedMemoryMb ?? 0);
    const freeVcpus = host.cpus * input.cpuAllocationRatio - (load?.committedVcpus ?? 0);
    if (freeMemoryMb < input.memoryMb || freeVcpus < input.vcpus) {
      return { reserved: false, freeMemoryMb, freeVcpus };
    }
    await tx.insert(reservations).values({
      migrationId: input.migrationId,
      hostId: host.id,
      memoryMb: input.memoryMb,
      vcpus: input.vcpus,
    });
    return { reserved: true };
  });
}

export async function releaseReservation(db: Db, migrationId: string): Promise<void> {
  await db.delete(reservations).where(eq(reservations.migrationId, migrationId));
}

/** The switch-over is final: the guest now lives on the destination and its reservation becomes its placement. */
export async function commitGuestMove(
  db: Db,
  input: { migrationId: string; guestId: string; destinationHostId: string; status?: 'running' | 'ready' },
): Promise<void> {
  await db.transaction(async (tx) => {
    await tx
      .update(guests)
      .set({
        hostId: input.destinationHostId,
        status: input.status ?? 'running',
        lastError: null,
        updatedAt: new Date(),
      })
      .where(eq(guests.id, input.guestId));
    await tx.delete(reservations).where(eq(reservations.migrationId, input.migrationId));
  });
}
