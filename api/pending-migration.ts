import type { Client } from '@temporalio/client';
import type { Db } from '../db/client.ts';
import { activeMigrationOfGuest, insertActiveMigration, type NewMigration } from '../db/migration-store.ts';
import { and, eq } from 'drizzle-orm';
import { withGuestMigrationLock } from '../db/guest-migration-lock.ts';
import { guests, type Guest, type Migration } from '../db/schema.ts';
import { alreadyRunning } from './already-running.ts';
import { reapIfNeverStarted } from './unstarted-migrations.ts';

/**
 * Records a guest's new migration as `pending`, holding the guest's migration lock (`locked`). A migration
 * already active is a 409 naming it, unless it never started (the API stopped before its workflow): that one
 * is failed and the new one takes its place.
 */
export async function recordPendingMigration(
  locked: Db,
  temporal: Client,
  guest: Pick<Guest, 'id' | 'name'>,
  row: Omit<NewMigration, 'guestId' | 'phase'>,
): Promise<Migration> {
  const active = await activeMigrationOfGuest(locked, guest.id);
  if (active && !(await reapIfNeverStarted(temporal, locked, active)))
    throw alreadyRunning(guest.name, active.id);
  const created = await insertActiveMigration(locked, { ...row, guestId: guest.id, phase: 'pending' });
  if (created === 'guest-busy') {
    throw alreadyRunning(guest.name, (await activeMigrationOfGuest(locked, guest.id))?.id);
  }
  return created;
}

/**
 * The row of a migration that a durable run starts on its own (an alert batch, a rescue, an evacuation), under
 * the guest's migration lock and once per run: `runKey` is stored in the row's options, so a retried activity
 * finds the row it made. Refused, with the reason, when the guest left its source since the run planned, or
 * another migration of it is active.
 */
export async function recordRunMigration(
  db: Db,
  temporal: Client,
  guest: Pick<Guest, 'id' | 'name'>,
  runKey: string,
  row: Omit<NewMigration, 'guestId' | 'phase'>,
): Promise<{ migrationId: string } | { refused: string }> {
  return withGuestMigrationLock(db, guest.id, async (locked) => {
    const active = await activeMigrationOfGuest(locked, guest.id);
    if (active && active.options.runKey === runKey) return { migrationId: active.id };
    const [still] = await locked
      .select({ id: guests.id })
      .from(guests)
      .where(and(eq(guests.id, guest.id), eq(guests.hostId, row.sourceHostId)));
    if (!still) return { refused: 'the guest is no longer on its source host' };
    try {
      const created = await recordPendingMigration(locked, temporal, guest, {
        ...row,
        options: { ...row.options, runKey },
      });
      return { migrationId: created.id };
    } catch (err) {
      if ((err as { status?: number }).status === 409) return { refused: (err as Error).message };
      throw err;
    }
  });
}
