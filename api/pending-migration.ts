import type { Client } from '@temporalio/client';
import type { Db } from '../db/client.ts';
import { activeMigrationOfGuest, insertActiveMigration, type NewMigration } from '../db/migration-store.ts';
import type { Guest, Migration } from '../db/schema.ts';
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
