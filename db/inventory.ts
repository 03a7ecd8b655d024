import { and, asc, eq, inArray, ne, notInArray, or, sql } from 'drizzle-orm';
import type { HostStatusCondition } from '../domain/list-filters.ts';
import type { HostFacts } from '../domain/agent-contract.ts';
import type { Db } from './client.ts';
import { firstCredentialGeneration } from './host-removal-store.ts';
import type { Requester } from '../domain/requester.ts';
import { clusters, events, guests, hosts, type Guest, type Host } from './schema.ts';

export const DEFAULT_CLUSTER = 'default';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
export const isUuid = (s: string) => UUID.test(s);

export async function ensureCluster(db: Db, name = DEFAULT_CLUSTER): Promise<string> {
  await db.insert(clusters).values({ name }).onConflictDoNothing({ target: clusters.name });
  const [row] = await db.select({ id: clusters.id }).from(clusters).where(eq(clusters.name, name));
  if (!row) throw new Error(`cluster '${name}' could not be created`);
  return row.id;
}

/** An agent registering its host: facts overwrite what we had, operator settings (enabled, labels, flags) stay. */
export async function upsertHostFromFacts(db: Db, facts: HostFacts): Promise<Host> {
  const clusterId = await ensureCluster(db);
  const values = {
    name: facts.name,
    address: facts.address,
    agentUrl: facts.agentUrl,
    migrationAddress: facts.migrationAddress,
    driver: facts.driver,
    cpuModel: facts.cpuModel,
    microcode: facts.microcode,
    kernel: facts.kernel,
    qemuVersion: facts.qemuVersion,
    cpus: facts.cpus,
    memoryMb: facts.memoryMb,
    networks: facts.networks,
    sharedStoragePath: facts.sharedStoragePath,
    // An agent that no longer knows its link speed clears the stale one.
    migrationLinkMbps: facts.migrationLinkMbps ?? null,
    updatedAt: new Date(),
  };
  const [row] = await db
    .insert(hosts)
    .values({
      id: facts.hostId,
      clusterId,
      credentialGeneration: firstCredentialGeneration(facts.hostId),
      ...values,
    })
    .onConflictDoUpdate({ target: hosts.id, set: values })
    .returning();
  if (!row) throw new Error(`host ${facts.name} was not stored`);
  return row;
}

export async function findHost(db: Db, idOrName: string): Promise<Host | undefined> {
  const where = isUuid(idOrName)
    ? or(eq(hosts.id, idOrName), eq(hosts.name, idOrName))
    : eq(hosts.name, idOrName);
  const [row] = await db.select().from(hosts).where(where).limit(1);
  return row;
}

export interface HostFilter {
  /** Status as the list reports it, from the stored status and the etcd lease set (domain/list-filters.ts). */
  status?: HostStatusCondition;
  enabled?: boolean;
  driver?: Host['driver'];
  label?: { key: string; value: string };
  /** Keyset paging in the list's order (name, then id): the hosts after this one, at most `limit`. */
  after?: { name: string; id: string } | null;
  limit?: number;
}

function hostStatusWhere({ storedMaintenance, ids }: HostStatusCondition) {
  return and(
    storedMaintenance ? eq(hosts.status, 'maintenance') : ne(hosts.status, 'maintenance'),
    ids === undefined
      ? undefined
      : 'in' in ids
        ? ids.in.length > 0
          ? inArray(hosts.id, ids.in)
          : sql`false`
        : ids.notIn.length > 0
          ? notInArray(hosts.id, ids.notIn)
          : undefined,
  );
}

export function listHosts(db: Db, filter: HostFilter = {}) {
  const conditions = [
    filter.status !== undefined ? hostStatusWhere(filter.status) : undefined,
    filter.enabled !== undefined ? eq(hosts.enabled, filter.enabled) : undefined,
    filter.driver !== undefined ? eq(hosts.driver, filter.driver) : undefined,
    filter.label !== undefined
      ? sql`${hosts.labels} @> ${JSON.stringify({ [filter.label.key]: filter.label.value })}::jsonb`
      : undefined,
    filter.after
      ? sql`(${hosts.name}, ${hosts.id}) > (${filter.after.name}, ${filter.after.id}::uuid)`
      : undefined,
  ].filter((c) => c !== undefined);
  const ordered = db
    .select()
    .from(hosts)
    .where(conditions.length > 0 ? and(...conditions) : undefined)
    .orderBy(asc(hosts.name), asc(hosts.id));
  return filter.limit === undefined ? ordered : ordered.limit(filter.limit);
}

/** The guests one page of another list names. */
export const guestsByIds = (db: Db, ids: readonly string[]) =>
  ids.length === 0
    ? Promise.resolve([])
    : db
        .select()
        .from(guests)
        .where(inArray(guests.id, [...ids]));

/** The hosts of one page of guests: as many rows as the page names, whatever the fleet's size. */
export const hostsByIds = (db: Db, ids: readonly string[]) =>
  ids.length === 0
    ? Promise.resolve([])
    : db
        .select()
        .from(hosts)
        .where(inArray(hosts.id, [...ids]));

export async function findGuest(db: Db, idOrName: string): Promise<Guest | undefined> {
  const where = isUuid(idOrName)
    ? or(eq(guests.id, idOrName), eq(guests.name, idOrName))
    : eq(guests.name, idOrName);
  const [row] = await db.select().from(guests).where(where).limit(1);
  return row;
}

export interface GuestFilter {
  hostId?: string;
  status?: Guest['status'];
  /** Only guests of these projects (a scoped token's view); undefined: every project. */
  projects?: string[];
  /** Keyset paging in the list's order (name, then id): the guests after this one, at most `limit`. */
  after?: { name: string; id: string } | null;
  limit?: number;
}

export function listGuests(db: Db, filter: GuestFilter = {}) {
  const conditions = [
    filter.hostId !== undefined ? eq(guests.hostId, filter.hostId) : undefined,
    filter.status !== undefined ? eq(guests.status, filter.status) : undefined,
    filter.projects !== undefined ? inArray(guests.project, filter.projects) : undefined,
    filter.after
      ? sql`(${guests.name}, ${guests.id}) > (${filter.after.name}, ${filter.after.id})`
      : undefined,
  ].filter((c) => c !== undefined);
  const ordered = db
    .select()
    .from(guests)
    .where(conditions.length > 0 ? and(...conditions) : undefined)
    .orderBy(asc(guests.name), asc(guests.id));
  return filter.limit === undefined ? ordered : ordered.limit(filter.limit);
}

export type NewGuest = typeof guests.$inferInsert;

export async function insertGuest(db: Db, guest: NewGuest): Promise<Guest> {
  const [row] = await db.insert(guests).values(guest).returning();
  if (!row) throw new Error(`guest ${guest.name} was not stored`);
  return row;
}

export async function setGuestStatus(
  db: Db,
  guestId: string,
  status: Guest['status'],
  lastError: string | null = null,
): Promise<void> {
  await db.update(guests).set({ status, lastError, updatedAt: new Date() }).where(eq(guests.id, guestId));
}

export interface NewEvent {
  subjectKind: 'host' | 'guest' | 'migration' | 'rule';
  subjectId: string;
  type: string;
  level?: 'info' | 'warning' | 'error';
  message: string;
  data?: Record<string, unknown>;
  /** A writer that may retry gives each event a key: the same key is recorded once. */
  dedupeKey?: string;
  /** Who caused it; left out, a migration's event carries the migration's requester, any other none. */
  requestedBy?: Requester;
}

/**
 * Events about one subject that inherits no requester (a rule, a host), in one statement: their ids rise in the
 * order given, and each whose dedupe key is recorded already is skipped.
 */
export async function recordEventsInOrder(db: Db, list: readonly NewEvent[]): Promise<void> {
  if (list.length === 0) return;
  await db
    .insert(events)
    .values(list.map((event) => ({ ...event, data: event.data ?? {} })))
    .onConflictDoNothing({ target: events.dedupeKey });
}

export async function recordEvent(db: Db, event: NewEvent): Promise<void> {
  const inherited =
    event.requestedBy === undefined && event.subjectKind === 'migration' && isUuid(event.subjectId)
      ? sql`(select m.requested_by from migrations m where m.id = ${event.subjectId}::uuid)`
      : undefined;
  await db
    .insert(events)
    .values({ ...event, data: event.data ?? {}, ...(inherited ? { requestedBy: inherited } : {}) })
    .onConflictDoNothing({ target: events.dedupeKey });
}
