import type { Client } from '@temporalio/client';
import type { Db } from '../db/client.ts';
import {
  activeMigrationOfGuest,
  activeMigrationsOfGuests,
  insertActiveMigration,
  insertActiveMigrations,
  type NewMigration,
} from '../db/migration-store.ts';
import { inArray } from 'drizzle-orm';
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
 * another migration of it is active. One guest's recordRunMigrations.
 */
export async function recordRunMigration(
  db: Db,
  temporal: Client,
  guest: Pick<Guest, 'id' | 'name'>,
  runKey: string,
  row: Omit<NewMigration, 'guestId' | 'phase'>,
): Promise<RunMigrationRecord> {
  const [answer] = await recordRunMigrations(db, temporal, runKey, [{ guest, row }]);
  return answer!;
}

export interface RunMigrationRequest {
  guest: Pick<Guest, 'id' | 'name'>;
  row: Omit<NewMigration, 'guestId' | 'phase'>;
}

export type RunMigrationRecord = { migrationId: string } | { refused: string };

/**
 * Several guests' rows as recordRunMigration records each, in one go: the guests' locks in one statement, their
 * active migrations and hosts in one read each, the new rows in one insert. An alert batch of fifty moves costs a
 * handful of round trips instead of fifty locked transactions. Answers in the requests' order. A guest whose
 * active migration is another run's (reaped if it never started, else refused), or whose row meets one started
 * meanwhile, takes recordPendingMigration's way, still under the same locks.
 */
export async function recordRunMigrations(
  db: Db,
  temporal: Client,
  runKey: string,
  requests: readonly RunMigrationRequest[],
): Promise<RunMigrationRecord[]> {
  const guestIds = requests.map(({ guest }) => guest.id);
  if (new Set(guestIds).size !== guestIds.length)
    throw new Error('recordRunMigrations: a guest appears twice');
  if (requests.length === 0) return [];
  return withGuestMigrationLock(db, guestIds, async (locked) => {
    const actives = await activeMigrationsOfGuests(locked, guestIds);
    const hostOf = new Map(
      (
        await locked
          .select({ id: guests.id, hostId: guests.hostId })
          .from(guests)
          .where(inArray(guests.id, guestIds))
      ).map((guest) => [guest.id, guest.hostId]),
    );
    const answers = new Map<string, RunMigrationRecord>();
    const fresh: RunMigrationRequest[] = [];
    const contested: RunMigrationRequest[] = [];
    for (const request of requests) {
      const active = actives.get(request.guest.id);
      if (active && active.options.runKey === runKey)
        answers.set(request.guest.id, { migrationId: active.id });
      else if (hostOf.get(request.guest.id) !== request.row.sourceHostId)
        answers.set(request.guest.id, { refused: 'the guest is no longer on its source host' });
      else (active ? contested : fresh).push(request);
    }
    const withRunKey = (row: RunMigrationRequest['row']) => ({ ...row, options: { ...row.options, runKey } });
    const inserted = await insertActiveMigrations(
      locked,
      fresh.map(({ guest, row }) => ({ ...withRunKey(row), guestId: guest.id, phase: 'pending' as const })),
    );
    if (inserted === 'guest-busy') contested.push(...fresh);
    else for (const created of inserted) answers.set(created.guestId, { migrationId: created.id });
    for (const { guest, row } of contested) {
      try {
        const created = await recordPendingMigration(locked, temporal, guest, withRunKey(row));
        answers.set(guest.id, { migrationId: created.id });
      } catch (err) {
        if ((err as { status?: number }).status !== 409) throw err;
        answers.set(guest.id, { refused: (err as Error).message });
      }
    }
    return requests.map(({ guest }) => answers.get(guest.id)!);
  });
}
