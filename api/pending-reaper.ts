import type { Client } from '@temporalio/client';
import { and, eq, lt } from 'drizzle-orm';
import type { Db } from '../db/client.ts';
import { withGuestMigrationLock } from '../db/guest-migration-lock.ts';
import { migrations } from '../db/schema.ts';
import { reapIfNeverStarted } from './unstarted-migrations.ts';

/** A `pending` row younger than this may belong to a request that is starting its workflow right now. */
export const PENDING_GRACE_MS = 60_000;

/**
 * Fails every migration the API recorded but never started (it stopped, or lost PostgreSQL or Temporal,
 * between the two steps), so that each reaches a terminal phase even if no one asks for the guest again.
 * Each row is judged under its guest's migration lock, as a new request would be. Returns how many it failed.
 */
export async function reapNeverStartedMigrations(
  db: Db,
  temporal: Client,
  now: Date = new Date(),
): Promise<number> {
  const stale = await db
    .select()
    .from(migrations)
    .where(
      and(
        eq(migrations.phase, 'pending'),
        lt(migrations.requestedAt, new Date(now.getTime() - PENDING_GRACE_MS)),
      ),
    );
  let reaped = 0;
  for (const row of stale) {
    const done = await withGuestMigrationLock(db, [row.guestId], async (locked) => {
      const [current] = await locked.select().from(migrations).where(eq(migrations.id, row.id));
      return current !== undefined && reapIfNeverStarted(temporal, locked, current);
    });
    if (done) reaped += 1;
  }
  return reaped;
}

/** Runs the reaper now and then every intervalMs; failures are logged and retried on the next round. */
export function startPendingReaper(db: Db, temporal: Client, intervalMs = 30_000): () => void {
  let running = false;
  const round = async () => {
    if (running) return;
    running = true;
    try {
      const reaped = await reapNeverStartedMigrations(db, temporal);
      if (reaped > 0)
        console.log(`pending reaper: failed ${reaped} migration(s) whose workflow never started`);
    } catch (err) {
      console.warn(`pending reaper: ${(err as Error).message}`);
    } finally {
      running = false;
    }
  };
  void round();
  const timer = setInterval(() => void round(), intervalMs);
  return () => clearInterval(timer);
}
