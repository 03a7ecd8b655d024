import type { CheckResult } from './prechecks.ts';

/**
 * What a migrate request answers, read from the migration's record rather than asked of its workflow: the run
 * writes a `destination_chosen` event once its pre-checks passed and the destination is reserved, or a
 * `precheck_failed` event and a terminal phase when they failed. Reading the record keeps the API from waiting
 * on a workflow update, whose completion, interleaved with the local activities of a long first workflow task,
 * could be ordered differently on replay (a nondeterminism seen once under heavy load).
 */
export type PrecheckReading =
  | { kind: 'waiting' }
  | { kind: 'chosen'; destination: string | null }
  | { kind: 'failed'; reason: string; failures: CheckResult[] };

export interface RecordSeen {
  phase: string;
  error: string | null;
  /** As stored: CheckResult objects. */
  checks: readonly Record<string, unknown>[] | null;
}

export interface EventSeen {
  type: string;
  message: string;
  data: unknown;
}

const ENDED = new Set(['failed', 'cancelled']);
/** Phases a run reaches only after its pre-checks passed. */
const BEFORE_VERDICT = new Set(['pending', 'prechecks']);

export function readPrecheckVerdict(row: RecordSeen, events: readonly EventSeen[]): PrecheckReading {
  const chosen = events.find((e) => e.type === 'destination_chosen');
  if (chosen) {
    const destination = (chosen.data as { destination?: unknown } | null)?.destination;
    return { kind: 'chosen', destination: typeof destination === 'string' ? destination : null };
  }
  if (ENDED.has(row.phase)) {
    const failed = events.find((e) => e.type === 'precheck_failed');
    const listed = (failed?.data as { failures?: CheckResult[] } | null)?.failures;
    return {
      kind: 'failed',
      reason: row.error ?? failed?.message ?? 'pre-checks failed',
      failures:
        listed ?? ((row.checks ?? []).filter((check) => check.ok === false) as unknown as CheckResult[]),
    };
  }
  if (!BEFORE_VERDICT.has(row.phase)) return { kind: 'chosen', destination: null };
  return { kind: 'waiting' };
}
