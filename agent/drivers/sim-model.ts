/**
 * The sim driver's model of a QEMU RAM migration, as pure functions of elapsed time.
 *
 * Block migration: the local disks are copied first, at the bandwidth (the 'setup' phase, as the
 * qemu driver's mirror phase); the RAM copy starts once they are.
 * Pre-copy: the first pass sends all memory; each later pass sends what the guest dirtied during the
 * previous one (never more than its working set). At the end of a pass (a dirty sync) the migration
 * completes when what is left fits in the downtime limit at the bandwidth; else the next pass starts.
 * Auto-converge throttles the guest's vCPUs (so its dirty rate, proportionally): from the end of the
 * second pass, each pass that ends without converging while the guest dirtied more than half of what
 * it sent sets the throttle to cpu-throttle-initial, then raises it by cpu-throttle-increment, up to
 * max-cpu-throttle. Post-copy switches the guest to the destination at once and drains what is left
 * at the bandwidth whatever the dirty rate: the same cap as pre-copy (the qemu driver sets QEMU's
 * max-postcopy-bandwidth with max-bandwidth), never faster.
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
/** QEMU's defaults of cpu-throttle-initial, cpu-throttle-increment and max-cpu-throttle. */
export const THROTTLE_DEFAULTS = { initial: 20, increment: 10, max: 99 } as const;

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
  /** max-cpu-throttle; default 99. */
  throttleMaxPercent?: number;
}

/** 'setup': copying the local disks (block migration) before any RAM. */
export type SimPhase = 'setup' | 'active' | 'postcopy-active' | 'completed';

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
  /** Block migration: bytes of local disks in all, and still to copy (absent in older states: 0). */
  diskTotalBytes?: number;
  diskRemainingBytes?: number;
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

/** The state at the start of a migration; `diskBytes` of local disks are copied before the RAM. */
export function startState(workload: SimWorkload, diskBytes = 0): SimMigrationState {
  return {
    phase: diskBytes > 0 ? 'setup' : 'active',
    elapsedMs: 0,
    pass: 1,
    passRemainingBytes: workload.memoryBytes,
    passSentBytes: 0,
    dirtiedBytes: 0,
    transferredBytes: 0,
    throttlePercent: 0,
    switchoverAtMs: null,
    downtimeMs: null,
    diskTotalBytes: diskBytes,
    diskRemainingBytes: diskBytes,
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
    if (s.phase === 'setup') {
      const remaining = s.diskRemainingBytes ?? 0;
      const doneInWindow = remaining / bytesPerMs <= toMs - s.elapsedMs;
      if (doneInWindow) {
        s.elapsedMs += remaining / bytesPerMs;
        s.diskRemainingBytes = 0;
        s.phase = 'active';
      } else {
        s.diskRemainingBytes = remaining - (toMs - s.elapsedMs) * bytesPerMs;
        s.elapsedMs = toMs;
      }
      continue;
    }
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
  if (params.autoConverge && s.pass >= 2 && s.dirtiedBytes > THROTTLE_TRIGGER_RATIO * s.passSentBytes) {
    const max = params.throttleMaxPercent ?? THROTTLE_DEFAULTS.max;
    s.throttlePercent = Math.min(
      max,
      s.throttlePercent === 0
        ? params.throttleInitialPercent
        : s.throttlePercent + params.throttleIncrementPercent,
    );
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
  diskTransferredBytes: number;
  diskTotalBytes: number;
  diskRemainingBytes: number;
  diskReady: boolean;
}

/** The figures QEMU's query-migrate would show for this state. */
export function statusFigures(
  state: SimMigrationState,
  workload: SimWorkload,
  params: SimMigrationParams,
): SimStatusFigures {
  const done = state.phase === 'completed';
  const bytesPerMs = params.bandwidthBytesPerSec / 1000;
  const diskTotal = state.diskTotalBytes ?? 0;
  const diskRemaining = Math.round(state.diskRemainingBytes ?? 0);
  return {
    transferredBytes: Math.round(state.transferredBytes),
    remainingBytes: Math.round(state.passRemainingBytes),
    totalBytes: workload.memoryBytes,
    dirtyPagesRate:
      state.phase === 'active' ? Math.round(effectiveDirtyBytesPerSec(workload, state) / PAGE_SIZE) : 0,
    pageSize: PAGE_SIZE,
    dirtySyncCount: state.phase === 'setup' ? 0 : state.pass,
    mbps: done ? 0 : (params.bandwidthBytesPerSec * 8) / 1e6,
    expectedDowntimeMs:
      state.phase === 'active'
        ? Math.round((state.passRemainingBytes + state.dirtiedBytes) / bytesPerMs)
        : null,
    downtimeMs: done && state.downtimeMs !== null ? Math.round(state.downtimeMs) : null,
    totalTimeMs: Math.round(state.elapsedMs),
    cpuThrottlePercentage: state.throttlePercent > 0 ? state.throttlePercent : null,
    diskTransferredBytes: diskTotal - diskRemaining,
    diskTotalBytes: diskTotal,
    diskRemainingBytes: diskRemaining,
    diskReady: state.phase !== 'setup',
  };
}
