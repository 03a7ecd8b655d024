import { drizzle } from 'drizzle-orm/node-postgres';
import pg from 'pg';
import type { Db } from './client.ts';
import * as schema from './schema.ts';

/** First key of the advisory lock; the second is the guest id's hash. */
const LOCK_SPACE = 'guest-migration-start';

/** The lock was not granted in time (statement or query timeout): someone holds it for too long. */
export class GuestMigrationLockTimeout extends Error {}

/**
 * Runs `fn` while this session holds the migration lock of every guest named, on a connection of its own so that
 * what `fn` writes commits at once. Whoever starts, reaps or cancels a not-yet-started migration of a guest takes
 * it, so they never interleave. A crashed API process loses its connection and with it the locks.
 */
export async function withGuestMigrationLock<T>(
  db: Db,
  guestIds: string | string[],
  fn: (db: Db) => Promise<T>,
): Promise<T> {
  // One order for everyone, so two requests over overlapping guests cannot deadlock.
  const ids = [...new Set(typeof guestIds === 'string' ? [guestIds] : guestIds)].sort();
  const client = await poolOf(db).connect();
  // A checked-out client whose server goes away emits 'error'; unheard, that would crash the process.
  const onError = (err: Error) => console.warn(`guest migration lock connection: ${err.message}`);
  client.on('error', onError);
  let unlocked = false;
  try {
    // One statement for all of them, taken in the array's order (a volatile select list is evaluated after the
    // sort): fifty guests of an alert batch cost one round trip, not fifty.
    await client
      .query(
        'select pg_advisory_lock(hashtext($1), hashtext(id)) from unnest($2::text[]) with ordinality as t(id, n) order by n',
        [LOCK_SPACE, ids],
      )
      .catch((err: Error) => {
        const which = ids.length === 1 ? `guest ${ids[0]}` : `${ids.length} guests (${ids[0]}, …)`;
        throw new GuestMigrationLockTimeout(`migration lock of ${which}: ${err.message}`, { cause: err });
      });
    try {
      return await fn(drizzle(client, { schema }));
    } finally {
      await client.query('select pg_advisory_unlock_all()');
      unlocked = true;
    }
  } finally {
    client.off('error', onError);
    // A connection that may still hold a lock is closed rather than handed to someone else.
    client.release(!unlocked);
  }
}

function poolOf(db: Db): pg.Pool {
  const client = (db as { $client?: unknown }).$client;
  if (!(client instanceof pg.Pool)) throw new Error('the guest migration lock needs a database on a pg.Pool');
  return client;
}
