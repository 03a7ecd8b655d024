/**
 * The sim driver's model of a QEMU RAM migration, as pure functions of elapsed time.
 *
 * Pre-copy: the first pass sends all memory; each later pass sends what the guest dirtied during the
 * previous one (never more than its working set). At the end of a pass (a dirty sync) the migration
 * completes when what is left fits in the downtime limit at the bandwidth; else the next pass starts.
 * Auto-converge throttles the guest's vCPUs (so its dirty rate) when it dirties more than half of
 * what a pass sent. Post-copy switches the guest to the destination at once and drains what is left
 * at the bandwidth whatever the dirty rate.
 *
 * Nothing ticks: callers advance a state to "now" when they look at it, and keep the result.
 */

export const PAGE_SIZE = 4096;
const MIB = 1024 * 1024;
/** Pages the dirtier rewrites when the guest has a rate but no fill (as agent/guest-image/dirtier.c). */
export const DEFAULT_WORKING_SET_BYTES = 32 * MIB;
/** Device state and the last dirty pages never go in zero time. */
export const MIN_DOWNTIME_MS = 1;
export const POSTCOPY_SWITCH_DOWNTIME_MS = 2;
/** QEMU's throttle-trigger-threshold: dirtying more than this share of a pass's bytes triggers a throttle step. */
const THROTTLE_TRIGGER_RATIO = 0.5;
const MAX_THROTTLE_PERCENT = 99;

export interface SimWorkload {
  memoryBytes: number;
  dirtyBytesPerSec: number;
  workingSetBytes: number;
}

export interface SimMigrationParams {
  /** Effective bytes/s (an unlimited cap is the link speed); must be > 0. */
  bandwidthBytesPerSec: number;
  downtimeLimitMs: number;
  autoConverge: boolean;
  throttleInitialPercent: number;
  throttleIncrementPercent: number;
}

export type SimPhase = 'active' | 'postcopy-active' | 'completed';

export interface SimMigrationState {
  phase: SimPhase;
  /** Milliseconds since the migration started, up to which this state is computed. */
  elapsedMs: number;
  /** QEMU's dirty-sync-count: the number of the pass being sent. */
  pass: number;
  passRemainingBytes: number;
  passSentBytes: number;
  /** Bytes dirtied since the last sync: what the next pass (or the downtime) has to send. */
  dirtiedBytes: number;
  transferredBytes: number;
  throttlePercent: number;
  /** Elapsed ms at which the source stopped running (stop-and-copy or post-copy switch). */
  switchoverAtMs: number | null;
  downtimeMs: number | null;
}

export function workloadOf(spec: { memoryMb: number; dirtyRateMibs: number; fillMb: number }): SimWorkload {
  const memoryBytes = spec.memoryMb * MIB;
  const region = spec.fillMb > 0 ? spec.fillMb * MIB : spec.dirtyRateMibs > 0 ? DEFAULT_WORKING_SET_BYTES : 0;
  return {
    memoryBytes,
    dirtyBytesPerSec: spec.dirtyRateMibs * MIB,
    workingSetBytes: Math.min(memoryBytes, region),
  };
}

export function startState(workload: SimWorkload): SimMigrationState {
  return {
    phase: 'active',
    elapsedMs: 0,
    pass: 1,
    passRemainingBytes: workload.memoryBytes,
    passSentBytes: 0,
    dirtiedBytes: 0,
    transferredBytes: 0,
    throttlePercent: 0,
    switchoverAtMs: null,
    downtimeMs: null,
  };
}

export function effectiveDirtyBytesPerSec(workload: SimWorkload, state: SimMigrationState): number {
  return workload.workingSetBytes > 0 ? workload.dirtyBytesPerSec * (1 - state.throttlePercent / 100) : 0;
}

/** The state at elapsed time `toMs` (never earlier than the given one). Incremental: pass the last result back. */
export function advance(
  state: SimMigrationState,
  workload: SimWorkload,
  params: SimMigrationParams,
  toMs: number,
): SimMigrationState {
  const s = { ...state };
  const bytesPerMs = params.bandwidthBytesPerSec / 1000;
  while (s.phase !== 'completed' && s.elapsedMs < toMs) {
    const passEndsInWindow = s.passRemainingBytes / bytesPerMs <= toMs - s.elapsedMs;
    const dt = passEndsInWindow ? s.passRemainingBytes / bytesPerMs : toMs - s.elapsedMs;
    const sent = passEndsInWindow ? s.passRemainingBytes : Math.min(s.passRemainingBytes, dt * bytesPerMs);
    s.passRemainingBytes -= sent;
    s.passSentBytes += sent;
    s.transferredBytes += sent;
    s.elapsedMs = passEndsInWindow ? s.elapsedMs + dt : toMs;
    if (s.phase === 'active') {
      const dirtyPerMs = effectiveDirtyBytesPerSec(workload, s) / 1000;
      s.dirtiedBytes = Math.min(workload.workingSetBytes, s.dirtiedBytes + dirtyPerMs * dt);
    }
    if (passEndsInWindow) endPass(s, params, bytesPerMs);
  }
  return s;
}

function endPass(s: SimMigrationState, params: SimMigrationParams, bytesPerMs: number): void {
  s.passRemainingBytes = 0;
  if (s.phase === 'postcopy-active') {
    s.phase = 'completed';
    return;
  }
  const stopAndCopyMs = s.dirtiedBytes / bytesPerMs;
  if (stopAndCopyMs <= params.downtimeLimitMs) {
    s.switchoverAtMs = s.elapsedMs;
    s.downtimeMs = Math.max(MIN_DOWNTIME_MS, stopAndCopyMs);
    s.transferredBytes += s.dirtiedBytes;
    s.dirtiedBytes = 0;
    s.elapsedMs += s.downtimeMs;
    s.phase = 'completed';
    return;
  }
  if (params.autoConverge && s.dirtiedBytes > THROTTLE_TRIGGER_RATIO * s.passSentBytes) {
    s.throttlePercent =
      s.throttlePercent === 0
        ? params.throttleInitialPercent
        : Math.min(MAX_THROTTLE_PERCENT, s.throttlePercent + params.throttleIncrementPercent);
  }
  s.pass += 1;
  s.passRemainingBytes = s.dirtiedBytes;
  s.passSentBytes = 0;
  s.dirtiedBytes = 0;
}

/** Switches an active pre-copy to post-copy at the state's time: the source stops, the rest drains. */
export function switchToPostCopy(state: SimMigrationState, workload: SimWorkload): SimMigrationState {
  if (state.phase !== 'active') return state;
  return {
    ...state,
    phase: 'postcopy-active',
    passRemainingBytes: Math.min(workload.memoryBytes, state.passRemainingBytes + state.dirtiedBytes),
    passSentBytes: 0,
    dirtiedBytes: 0,
    switchoverAtMs: state.elapsedMs,
    downtimeMs: POSTCOPY_SWITCH_DOWNTIME_MS,
  };
}

/** Elapsed ms at which the migration completes under unchanged parameters, or null if not within `horizonMs`. */
export function projectedCompletionMs(
  state: SimMigrationState,
  workload: SimWorkload,
  params: SimMigrationParams,
  horizonMs: number,
): number | null {
  const end = advance(state, workload, params, state.elapsedMs + horizonMs);
  return end.phase === 'completed' ? end.elapsedMs : null;
}

export interface SimStatusFigures {
  transferredBytes: number;
  remainingBytes: number;
  totalBytes: number;
  dirtyPagesRate: number;
  pageSize: number;
  dirtySyncCount: number;
  mbps: number;
  expectedDowntimeMs: number | null;
  downtimeMs: number | null;
  totalTimeMs: number;
  cpuThrottlePercentage: number | null;
}

/** The figures QEMU's query-migrate would show for this state. */
export function statusFigures(
  state: SimMigrationState,
  workload: SimWorkload,
  params: SimMigrationParams,
): SimStatusFigures {
  const done = state.phase === 'completed';
  const bytesPerMs = params.bandwidthBytesPerSec / 1000;
  return {
    transferredBytes: Math.round(state.transferredBytes),
    remainingBytes: Math.round(state.passRemainingBytes),
    totalBytes: workload.memoryBytes,
    dirtyPagesRate:
      state.phase === 'active' ? Math.round(effectiveDirtyBytesPerSec(workload, state) / PAGE_SIZE) : 0,
    pageSize: PAGE_SIZE,
    dirtySyncCount: state.pass,
    mbps: done ? 0 : (params.bandwidthBytesPerSec * 8) / 1e6,
    expectedDowntimeMs:
      state.phase === 'active'
        ? Math.round((state.passRemainingBytes + state.dirtiedBytes) / bytesPerMs)
        : null,
    downtimeMs: done && state.downtimeMs !== null ? Math.round(state.downtimeMs) : null,
    totalTimeMs: Math.round(state.elapsedMs),
    cpuThrottlePercentage: state.throttlePercent > 0 ? state.throttlePercent : null,
  };
}
