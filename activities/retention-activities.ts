import { Context } from '@temporalio/activity';
import type { Db } from '../db/client.ts';
import {
  deleteEventsOfMigrations,
  deleteFinishedMigrations,
  deleteOldEvents,
  deleteOrphanMigrationEvents,
  deleteReservationsOf,
  finishedMigrationIds,
} from '../db/retention-store.ts';
import {
  addPruneCounts,
  DEFAULT_PRUNE_BUDGET_MS,
  NO_PRUNED_ROWS,
  PRUNE_BATCH_MIGRATIONS,
  PRUNE_BATCH_ROWS,
  retentionCutoff,
  withinPruneBudget,
  type PruneCounts,
  type PruneHistoryInput,
  type PruneHistoryResult,
} from '../domain/retention.ts';

export interface RetentionActivityDeps {
  db: Db;
}

export function retentionActivities(deps: RetentionActivityDeps) {
  return {
    /**
     * Deletes what retention makes prunable (domain/retention.ts), batch after batch, heartbeating between
     * them, until nothing is left or the budget is spent. Deleting is idempotent: a retry starts over and
     * finds only what is still there.
     */
    async pruneHistory(input: PruneHistoryInput): Promise<PruneHistoryResult> {
      const startedMs = Date.now();
      const cutoff = retentionCutoff(new Date(startedMs), input.retentionDays);
      const budgetMs = input.budgetMs ?? DEFAULT_PRUNE_BUDGET_MS;
      let counts = NO_PRUNED_ROWS;
      for await (const pruned of pruneBatches(deps.db, cutoff)) {
        counts = addPruneCounts(counts, pruned);
        heartbeat(counts);
        if (!withinPruneBudget(startedMs, Date.now(), budgetMs)) {
          return { ...counts, cutoff: cutoff.toISOString(), done: false };
        }
      }
      return { ...counts, cutoff: cutoff.toISOString(), done: true };
    },
  };
}

/**
 * One statement per step: finished migrations a chunk at a time (their events, then any reservation, then
 * the rows), then the other old events, then old events of migrations that are gone.
 */
async function* pruneBatches(db: Db, cutoff: Date): AsyncGenerator<Partial<PruneCounts>> {
  for (;;) {
    const ids = await finishedMigrationIds(db, cutoff, PRUNE_BATCH_MIGRATIONS);
    if (ids.length === 0) break;
    for (;;) {
      const deleted = await deleteEventsOfMigrations(db, ids, PRUNE_BATCH_ROWS);
      if (deleted === 0) break;
      yield { events: deleted };
    }
    yield { reservations: await deleteReservationsOf(db, ids) };
    const gone = await deleteFinishedMigrations(db, ids, cutoff);
    yield { migrations: gone };
    // Rows that stayed would be picked again and again.
    if (gone === 0) break;
  }
  yield* untilNoneLeft(() => deleteOldEvents(db, cutoff, PRUNE_BATCH_ROWS));
  yield* untilNoneLeft(() => deleteOrphanMigrationEvents(db, cutoff, PRUNE_BATCH_ROWS));
}

async function* untilNoneLeft(deleteBatch: () => Promise<number>): AsyncGenerator<Partial<PruneCounts>> {
  for (;;) {
    const deleted = await deleteBatch();
    if (deleted === 0) return;
    yield { events: deleted };
  }
}

/** Outside an activity (a direct call in a test) there is nobody to tell. */
function heartbeat(counts: PruneCounts): void {
  let ctx: Context;
  try {
    ctx = Context.current();
  } catch {
    return;
  }
  if (!ctx.info.isLocal) ctx.heartbeat(counts);
}
