/**
 * Temporal turns an update away with RESOURCE_EXHAUSTED (gRPC code 8) when the workflow already has its limit of
 * updates in flight (10 by default, `history.maxInFlightUpdates`) or the namespace its rate: fifty migrations
 * asking the cluster's slots workflow at once meet it. Nothing was admitted, so asking again is safe; soon and
 * spread out, not on an activity retry's seconds-long backoff.
 */
const RESOURCE_EXHAUSTED = 8;

/** Whether the error, or one it wraps (the client's ServiceError keeps the gRPC error as its cause), is that refusal. */
export function isTemporalBusy(error: unknown): boolean {
  for (let e: unknown = error, depth = 0; e !== null && typeof e === 'object' && depth < 5; depth++) {
    if ((e as { code?: unknown }).code === RESOURCE_EXHAUSTED) return true;
    e = (e as { cause?: unknown }).cause;
  }
  return false;
}

export const BUSY_RETRY = {
  firstDelayMs: 25,
  maxDelayMs: 500,
  /** Past this, the refusal is the activity's failure, and its own retry policy takes over. */
  giveUpAfterMs: 20_000,
} as const;

/**
 * The wait before asking again after `attempt` refusals (0-based): doubling from 25 ms up to 500 ms, drawn
 * uniformly from its upper half (`random` in [0, 1)) so that the refused do not all come back together.
 */
export function busyRetryDelayMs(attempt: number, random: number): number {
  const ceiling = Math.min(BUSY_RETRY.maxDelayMs, BUSY_RETRY.firstDelayMs * 2 ** Math.max(0, attempt));
  return Math.round(ceiling / 2 + (ceiling / 2) * Math.min(Math.max(random, 0), 1));
}
