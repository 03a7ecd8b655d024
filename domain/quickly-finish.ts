import type { MigrationStatus } from './agent-contract.ts';

/** QEMU's default max-cpu-throttle: auto-converge cannot slow the guest further than this. */
export const MAX_CPU_THROTTLE_PERCENT = 99;
/** Cloudpods waits this many dirty-sync rounds at maximum throttle before giving up on the downtime limit. */
export const ROUNDS_AFTER_MAX_THROTTLE = 2;

export interface QuicklyFinishState {
  /** The dirty-sync round at which throttling first reached its maximum. */
  maxThrottleAtRound: number | null;
  applied: boolean;
}

export const initialQuicklyFinishState: QuicklyFinishState = { maxThrottleAtRound: null, applied: false };

export interface QuicklyFinishDecision {
  state: QuicklyFinishState;
  /** Raise the downtime limit to this, once, so the final copy can happen. */
  setDowntimeMs?: number;
  reason?: string;
}

/**
 * Cloudpods' quickly-finish: once auto-converge throttling has reached its maximum and two more rounds have
 * passed without finishing, accept QEMU's own expected downtime as the new limit.
 */
export function quicklyFinishStep(
  state: QuicklyFinishState,
  status: MigrationStatus,
  currentDowntimeLimitMs: number,
): QuicklyFinishDecision {
  if (state.applied || status.status !== 'active') return { state };
  const throttle = status.cpuThrottlePercentage ?? 0;
  let next = state;
  if (next.maxThrottleAtRound === null && throttle >= MAX_CPU_THROTTLE_PERCENT) {
    next = { ...next, maxThrottleAtRound: status.dirtySyncCount };
  }
  if (
    next.maxThrottleAtRound === null ||
    status.dirtySyncCount < next.maxThrottleAtRound + ROUNDS_AFTER_MAX_THROTTLE
  ) {
    return { state: next };
  }
  const expected = status.expectedDowntimeMs;
  if (expected === null || expected <= currentDowntimeLimitMs) return { state: next };
  return {
    state: { ...next, applied: true },
    setDowntimeMs: Math.ceil(expected),
    reason: `CPU throttle at ${throttle}% since round ${next.maxThrottleAtRound}, now round ${status.dirtySyncCount}: downtime limit ${currentDowntimeLimitMs} ms -> QEMU's expected ${Math.ceil(expected)} ms`,
  };
}
