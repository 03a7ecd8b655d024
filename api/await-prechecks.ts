import type { Client } from '@temporalio/client';
import { findMigration } from '../db/migration-store.ts';
import type { PrecheckAnswer } from '../workflows/live-migrate-messages.ts';
import type { ApiDeps } from './deps.ts';
import { ApiError } from './errors.ts';
import { DEFAULT_TIMINGS } from '../domain/live-migration.ts';

/**
 * What a migrate request answers once the workflow's pre-checks spoke (or did not within the timeout): a 422
 * with the failed checks, or the chosen destination. Shared by every kind of migration.
 */
export async function precheckVerdict(
  deps: ApiDeps,
  migrationId: string,
  ask: () => Promise<PrecheckAnswer>,
): Promise<{ destination: { id: string; name: string } | null; phase: 'preparing' | 'prechecks' }> {
  const { db, temporal } = deps;
  const timings = deps.liveMigrationTimings ?? DEFAULT_TIMINGS;
  const answer = await awaitPrechecks(temporal, ask, timings.precheckAnswerTimeoutMs);
  if (answer === 'workflow-ended' || (answer !== null && !answer.ok)) {
    const row = await findMigration(db, migrationId);
    const ended = row?.phase === 'failed' || row?.phase === 'cancelled';
    if (answer !== 'workflow-ended' || ended) {
      const failures =
        answer === 'workflow-ended'
          ? (row?.checks ?? []).filter((check) => check.ok === false)
          : answer.failures;
      const reason = answer === 'workflow-ended' ? undefined : answer.reason;
      throw new ApiError(422, 'precheck_failed', row?.error ?? reason ?? 'pre-checks failed', undefined, {
        migrationId,
        failures,
      });
    }
  }
  const verdict = answer !== null && answer !== 'workflow-ended' && answer.ok ? answer : null;
  return { destination: verdict?.destination ?? null, phase: verdict ? 'preparing' : 'prechecks' };
}

/** The pre-check verdict, 'workflow-ended' if the run finished before it could answer, or null on timeout. */
export async function awaitPrechecks(
  temporal: Client,
  ask: () => Promise<PrecheckAnswer>,
  timeoutMs: number,
): Promise<PrecheckAnswer | 'workflow-ended' | null> {
  try {
    return await temporal.connection.withDeadline(Date.now() + timeoutMs, ask);
  } catch (err) {
    return isDeadlineExceeded(err) ? null : 'workflow-ended';
  }
}

/** gRPC status code DEADLINE_EXCEEDED. */
const GRPC_DEADLINE_EXCEEDED = 4;

function isDeadlineExceeded(err: unknown): boolean {
  for (let e: unknown = err; e instanceof Error; e = e.cause) {
    if ((e as { code?: unknown }).code === GRPC_DEADLINE_EXCEEDED) return true;
  }
  return false;
}
