import { and, eq } from 'drizzle-orm';
import {
  hostFlagChanges,
  validateHostFlags,
  type HostAutoMigrateFlags,
  type HostFlagChange,
  type HostFlagField,
} from '../domain/host-down.ts';
import { hostFlagsUpdatedEvent } from '../domain/host-events.ts';
import type { Requester } from '../domain/requester.ts';
import type { Db } from './client.ts';
import { eventPage, type EventPageFilter } from './event-page.ts';
import { events, hosts, type Host } from './schema.ts';

export type HostFlagsOutcome =
  { ok: true; host: Host; changes: HostFlagChange[] } | { ok: false; field: HostFlagField; message: string };

/**
 * Applies a patch of the auto-migrate flags under a lock on the host row, so two requests at once cannot
 * leave shutdown on with down off; the `update` event is written in the same transaction, and only when a
 * flag changed. Undefined when there is no such host.
 */
export function updateHostAutoMigrateFlags(
  db: Db,
  hostId: string,
  patch: Partial<HostAutoMigrateFlags>,
  /** Called under the lock before auto_migrate_on_host_down turns on; throwing leaves the flags as they were. */
  beforeEnablingDown?: (host: Host) => Promise<void>,
  /** Who asked, recorded on the `update` event. */
  requestedBy?: Requester,
): Promise<HostFlagsOutcome | undefined> {
  return db.transaction(async (tx) => {
    const [host] = await tx.select().from(hosts).where(eq(hosts.id, hostId)).for('update');
    if (!host) return undefined;
    const result = validateHostFlags(host, patch);
    if (!result.ok) return result;
    const changes = hostFlagChanges(host, result.flags);
    if (changes.length === 0) return { ok: true, host, changes };
    if (result.flags.autoMigrateOnHostDown && !host.autoMigrateOnHostDown) await beforeEnablingDown?.(host);
    const [updated] = await tx
      .update(hosts)
      .set({ ...result.flags, updatedAt: new Date() })
      .where(eq(hosts.id, hostId))
      .returning();
    if (!updated) throw new Error(`host ${hostId} vanished under its row lock`);
    await tx.insert(events).values({ ...hostFlagsUpdatedEvent(host, changes), requestedBy });
    return { ok: true, host: updated, changes };
  });
}

/** A page of a host's events, newest first. */
export function hostEvents(db: Db, hostId: string, filter: EventPageFilter) {
  return eventPage(db, and(eq(events.subjectKind, 'host'), eq(events.subjectId, hostId)), filter);
}

/** Maintenance is the operator's: in it, no placement targets the host; out of it, the lease says online. */
export async function setHostMaintenance(
  db: Db,
  hostId: string,
  inMaintenance: boolean,
): Promise<Host | undefined> {
  const [updated] = await db
    .update(hosts)
    .set({ status: inMaintenance ? 'maintenance' : 'online', updatedAt: new Date() })
    .where(eq(hosts.id, hostId))
    .returning();
  return updated;
}
