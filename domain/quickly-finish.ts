import type { MigrationStatus } from './agent-contract.ts';
import { QEMU_MAX_DOWNTIME_MS } from './migration-config.ts';

/**
 * Cloudpods' LiveMigrateCpuThrottleMax (pkg/hostman/options/options.go, default 99): quickly-finish acts only on
 * a sample whose cpu-throttle-percentage has reached it.
 */
export const MAX_CPU_THROTTLE_PERCENT = 99;

/**
 * Quickly-finish acts once dirty-sync-count is MORE than this many rounds past the round it counts from
 * (Cloudpods: `if stats.RAM.DirtySyncCount <= s.dirtySyncCount+1 { return }`), i.e. two rounds later.
 */
export const ROUNDS_AFTER_FIRST_OVER_LIMIT = 1;

export interface QuicklyFinishState {
  /**
   * The dirty-sync-count of the first sample that met every condition (active, memory remaining, throttle at
   * its maximum, expected downtime over the limit): Cloudpods' `s.dirtySyncCount`, recorded once, never reset.
   * null until then. (A state saved before this field existed reads as null.)
   */
  countFromRound: number | null;
}

export const initialQuicklyFinishState: QuicklyFinishState = { countFromRound: null };

export interface QuicklyFinishDecision {
  state: QuicklyFinishState;
  /** Raise the downtime limit to this, so the final copy can happen. */
  setDowntimeMs?: number;
  reason?: string;
}

/**
 * Cloudpods' quickly-finish, as SGuestLiveMigrateTask.onGetMigrateStatus (pkg/hostman/guestman/guesttasks.go)
 * runs it on every query-migrate sample while the migration is 'active':
 * 1. nothing when no RAM remains (`stats.RAM.Remaining > 0`);
 * 2. nothing while QEMU reports no cpu-throttle-percentage, or one below LiveMigrateCpuThrottleMax (99): the
 *    throttle is checked on EVERY sample, not latched;
 * 3. nothing unless QEMU's expected downtime exceeds the limit in force (Cloudpods' `s.expectDowntime`: 300 ms,
 *    QEMU's default it never changes otherwise, then each value it set; here the downtime limit in force);
 * 4. the first sample that gets this far records its dirty-sync-count and does nothing more;
 * 5. later such samples do nothing until dirty-sync-count > recorded + 1;
 * 6. then the limit is set to the expected downtime, and again on every later sample whose expected downtime
 *    exceeds the (raised) limit: the limit follows the expected downtime up, never down.
 * One difference: the value is capped at QEMU's maximum downtime-limit (which QEMU would refuse anyway).
 */
export function quicklyFinishStep(
  state: QuicklyFinishState,
  status: MigrationStatus,
  currentDowntimeLimitMs: number,
): QuicklyFinishDecision {
  if (status.status !== 'active' || status.remainingBytes <= 0) return { state };
  const throttle = status.cpuThrottlePercentage;
  if (throttle === null || throttle < MAX_CPU_THROTTLE_PERCENT) return { state };
  const expected = status.expectedDowntimeMs;
  if (expected === null || expected <= currentDowntimeLimitMs) return { state };
  const from = (state as Partial<QuicklyFinishState>).countFromRound ?? null;
  if (from === null) return { state: { countFromRound: status.dirtySyncCount } };
  if (status.dirtySyncCount <= from + ROUNDS_AFTER_FIRST_OVER_LIMIT) return { state };
  const downtime = Math.min(Math.ceil(expected), QEMU_MAX_DOWNTIME_MS);
  if (downtime <= currentDowntimeLimitMs) return { state };
  return {
    state,
    setDowntimeMs: downtime,
    reason:
      `CPU throttle at ${throttle}%, QEMU expects ${Math.ceil(expected)} ms > the ${currentDowntimeLimitMs} ms ` +
      `limit since round ${from}, now round ${status.dirtySyncCount}: downtime limit ${currentDowntimeLimitMs} ms ` +
      `-> QEMU's expected ${downtime} ms`,
  };
}
