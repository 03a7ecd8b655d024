import { and, eq, notInArray, or, sql } from 'drizzle-orm';
import { hostRemovalBlockers, type HostRemovalBlocker } from '../domain/host-removal.ts';
import { terminalMigrationPhases } from '../domain/migration-phases.ts';
import type { Requester } from '../domain/requester.ts';
import type { Db } from './client.ts';
import {
  events,
  guests,
  hosts,
  migrationAlerts,
  migrations,
  removedHosts,
  reservations,
  type Host,
} from './schema.ts';

export type HostRemovalOutcome =
  | { removed: true; host: Host; eventsRemoved: number }
  | { removed: false; host: Host; blockers: HostRemovalBlocker[] };

/**
 * Removes a host and what hangs off it, unless something still needs it (domain/host-removal.ts). The host row is
 * locked first: a guest, reservation or migration written meanwhile waits for this transaction, so the rules see
 * everything that could block. Gone with the row: its events, leftover reservations, and its credential (derived
 * from the row, so no credential of it authenticates any more). Kept: its finished migrations (their host id is
 * named in removed_hosts) and the enrolment tokens made for its name (the way back in for a reinstalled host).
 * Undefined when there is no such host.
 */
export function removeHost(
  db: Db,
  hostId: string,
  online: boolean,
  removedBy: Requester,
): Promise<HostRemovalOutcome | undefined> {
  return db.transaction(async (tx) => {
    const [host] = await tx.select().from(hosts).where(eq(hosts.id, hostId)).for('update');
    if (!host) return undefined;
    // One after the other: a transaction is one connection, which runs one query at a time.
    const assigned = await tx
      .select({ id: guests.id, name: guests.name })
      .from(guests)
      .where(eq(guests.hostId, hostId));
    const involved = await tx
      .select({
        id: migrations.id,
        phase: migrations.phase,
        guestName: guests.name,
        sourceHostId: migrations.sourceHostId,
        destinationHostId: migrations.destinationHostId,
      })
      .from(migrations)
      .innerJoin(guests, eq(guests.id, migrations.guestId))
      .where(
        and(
          or(eq(migrations.sourceHostId, hostId), eq(migrations.destinationHostId, hostId)),
          notInArray(migrations.phase, [...terminalMigrationPhases]),
        ),
      );
    const alertRules = await tx
      .select({
        name: migrationAlerts.name,
        sourceHostIds: migrationAlerts.sourceHostIds,
        targetHostIds: migrationAlerts.targetHostIds,
      })
      .from(migrationAlerts);
    const blockers = hostRemovalBlockers({
      host,
      online,
      guests: assigned,
      migrations: involved,
      alertRules,
    });
    if (blockers.length > 0) return { removed: false, host, blockers };

    await tx.delete(reservations).where(eq(reservations.hostId, hostId));
    const gone = await tx
      .delete(events)
      .where(and(eq(events.subjectKind, 'host'), eq(events.subjectId, hostId)))
      .returning({ id: events.id });
    const record = {
      name: host.name,
      credentialGeneration: host.credentialGeneration,
      removedBy,
      removedAt: new Date(),
    };
    await tx
      .insert(removedHosts)
      .values({ id: host.id, ...record })
      .onConflictDoUpdate({ target: removedHosts.id, set: record });
    await tx.delete(hosts).where(eq(hosts.id, hostId));
    return { removed: true, host, eventsRemoved: gone.length };
  });
}

/**
 * The credential generation a host row starts at: past the one a removed host of this id had reached, so a
 * credential issued before the removal does not come back with the id (db/inventory.ts upsertHostFromFacts).
 */
export const firstCredentialGeneration = (hostId: string) =>
  sql<number>`coalesce((select ${removedHosts.credentialGeneration} + 1 from ${removedHosts} where ${removedHosts.id} = ${hostId}), 1)`;

/** These host ids' names, the removed hosts' too (for history that names them); a live host wins. */
export async function hostNamesIncludingRemoved(
  db: Db,
  ids: readonly string[],
): Promise<Map<string, string>> {
  const wanted = [...new Set(ids)];
  if (wanted.length === 0) return new Map();
  const [live, removed] = await Promise.all([
    db
      .select({ id: hosts.id, name: hosts.name })
      .from(hosts)
      .where(sql`${hosts.id} = any(${sql.param(wanted)}::uuid[])`),
    db
      .select({ id: removedHosts.id, name: removedHosts.name })
      .from(removedHosts)
      .where(sql`${removedHosts.id} = any(${sql.param(wanted)}::uuid[])`),
  ]);
  return new Map([...removed, ...live].map((h) => [h.id, h.name]));
}
