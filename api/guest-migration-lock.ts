import type { Db } from '../db/client.ts';
import { GuestMigrationLockTimeout, withGuestMigrationLock } from '../db/guest-migration-lock.ts';
import type { Guest } from '../db/schema.ts';
import { ApiError } from './errors.ts';

/** The guests' migration lock for a request: waiting too long for it is a 409, never a 500. */
export async function underGuestMigrationLock<T>(
  db: Db,
  guests: Pick<Guest, 'id' | 'name'>[],
  fn: (db: Db) => Promise<T>,
): Promise<T> {
  try {
    return await withGuestMigrationLock(
      db,
      guests.map((g) => g.id),
      fn,
    );
  } catch (err) {
    if (!(err instanceof GuestMigrationLockTimeout)) throw err;
    const names = guests.map((g) => `'${g.name}'`).join(', ');
    throw new ApiError(
      409,
      'migration_starting',
      `another request is starting or cancelling a migration of server ${names}; try again in a moment`,
    );
  }
}
