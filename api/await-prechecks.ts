import { setTimeout as sleep } from 'node:timers/promises';
import { findHost } from '../db/inventory.ts';
import { findMigration, migrationEvents } from '../db/migration-store.ts';
import { DEFAULT_TIMINGS } from '../domain/live-migration.ts';
import { readPrecheckVerdict, type PrecheckReading } from '../domain/precheck-verdict.ts';
import type { ApiDeps } from './deps.ts';
import { ApiError } from './errors.ts';

/** How often the record is read while the pre-checks run (they take tens of milliseconds), without notifications. */
const VERDICT_POLL_MS = 20;
/** With notifications, the record is read again when it changes, or after this long in case one was lost. */
const VERDICT_NOTIFIED_POLL_MS = 500;

/**
 * What a migrate request answers once the workflow's pre-checks spoke (or did not within the timeout): a 422
 * with the failed checks, or the chosen destination. Shared by every kind of migration; read from the
 * migration's record (domain/precheck-verdict.ts says why not from a workflow update).
 */
export async function precheckVerdict(
  deps: ApiDeps,
  migrationId: string,
): Promise<{ destination: { id: string; name: string } | null; phase: 'preparing' | 'prechecks' }> {
  const timings = deps.liveMigrationTimings ?? DEFAULT_TIMINGS;
  const reading = await awaitPrecheckReading(deps, migrationId, timings.precheckAnswerTimeoutMs);
  if (reading.kind === 'failed') {
    throw new ApiError(422, 'precheck_failed', reading.reason, undefined, {
      migrationId,
      failures: reading.failures,
    });
  }
  if (reading.kind === 'waiting') return { destination: null, phase: 'prechecks' };
  const host = reading.destination === null ? undefined : await findHost(deps.db, reading.destination);
  return { destination: host ? { id: host.id, name: host.name } : null, phase: 'preparing' };
}

/** The record's verdict, or `waiting` when the pre-checks did not speak within the timeout. */
async function awaitPrecheckReading(
  deps: ApiDeps,
  migrationId: string,
  timeoutMs: number,
): Promise<PrecheckReading> {
  const deadline = Date.now() + timeoutMs;
  const changes = deps.migrationChanges;
  for (;;) {
    // Asked before the read, so a change landing between the read and the wait still wakes it.
    const next = changes?.listening
      ? changes.next(migrationId, Math.max(1, Math.min(VERDICT_NOTIFIED_POLL_MS, deadline - Date.now())))
      : null;
    const [row, events] = await Promise.all([
      findMigration(deps.db, migrationId),
      migrationEvents(deps.db, migrationId),
    ]);
    const reading = row ? readPrecheckVerdict(row, events) : ({ kind: 'waiting' } as const);
    if (reading.kind !== 'waiting' || Date.now() >= deadline) {
      next?.cancel();
      return reading;
    }
    if (next) await next.changed;
    else await sleep(VERDICT_POLL_MS);
  }
}
