/**
 * The rules of the `migration-lock` singleton that lets one alert-triggered batch migrate at a time (F23): at
 * most one holder, granted without waiting, on a lease so that a holder that stops renewing loses it. Pure:
 * the workflow passes its own clock.
 */

export interface LockHolder {
  /** Who holds it: an alert cycle's workflow id, unique per batch. */
  owner: string;
  /** For people: the rule and run, shown to whoever is refused. */
  description: string;
  acquiredAt: number;
  expiresAt: number;
}

export interface LockState {
  holder: LockHolder | null;
  /** Grants so far, over continue-as-new too. */
  grants: number;
  /**
   * Owners that released the lock, most recent last (bounded): a renewal that crossed the release tells its
   * keeper to stop quietly rather than that the lock was lost. Absent in state from older runs.
   */
  released?: string[];
}

/** How many releases the lock remembers. */
export const RELEASES_REMEMBERED = 20;

export interface LockRequest {
  owner: string;
  description: string;
  leaseMs: number;
}

export type TryAcquireAnswer = { granted: true; expiresAt: number } | { granted: false; holder: LockHolder };

export const emptyLock = (): LockState => ({ holder: null, grants: 0, released: [] });

/** A holder past its lease holds nothing. */
export function liveHolder(state: LockState, now: number): LockHolder | null {
  return state.holder && state.holder.expiresAt > now ? state.holder : null;
}

/** Granted when free, expired, or already held by the same owner (a retried request); refused otherwise. */
export function tryAcquire(
  state: LockState,
  request: LockRequest,
  now: number,
): { state: LockState; answer: TryAcquireAnswer } {
  const holder = liveHolder(state, now);
  if (holder && holder.owner !== request.owner) return { state, answer: { granted: false, holder } };
  const expiresAt = now + request.leaseMs;
  const next: LockHolder = {
    owner: request.owner,
    description: request.description,
    acquiredAt: holder?.acquiredAt ?? now,
    expiresAt,
  };
  return {
    state: { ...state, holder: next, grants: holder ? state.grants : state.grants + 1 },
    answer: { granted: true, expiresAt },
  };
}

export type RenewAnswer = { held: true } | { held: false; released: boolean };

/**
 * Extends the lease of the live holder; anyone else learns it does not hold the lock (any more), and whether
 * that is because it released it itself.
 */
export function renew(
  state: LockState,
  request: { owner: string; leaseMs: number },
  now: number,
): { state: LockState; answer: RenewAnswer } {
  const holder = liveHolder(state, now);
  if (!holder || holder.owner !== request.owner) {
    return { state, answer: { held: false, released: (state.released ?? []).includes(request.owner) } };
  }
  return {
    state: { ...state, holder: { ...holder, expiresAt: now + request.leaseMs } },
    answer: { held: true },
  };
}

/** Frees the lock if the caller holds it (a release by a former holder frees nothing). */
export function release(state: LockState, owner: string): { state: LockState; released: boolean } {
  if (state.holder?.owner !== owner) return { state, released: false };
  const released = [...(state.released ?? []), owner].slice(-RELEASES_REMEMBERED);
  return { state: { ...state, holder: null, released }, released: true };
}
