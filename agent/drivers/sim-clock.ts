/**
 * A sim guest's heartbeat counter, derived from time: it counts the seconds the guest has been
 * running, so pausing stops it and a migration carries it over to the destination.
 */
export interface SimClock {
  /** Seconds of running time accumulated before `runningSinceMs`. */
  baseSeconds: number;
  /** Epoch ms since which the guest runs, or null while it does not. */
  runningSinceMs: number | null;
  /** Epoch ms at which it last stopped running, null if it never did. */
  pausedAtMs: number | null;
}

export const newClock: SimClock = { baseSeconds: 0, runningSinceMs: null, pausedAtMs: null };

export function runningSeconds(clock: SimClock, nowMs: number): number {
  const running = clock.runningSinceMs === null ? 0 : Math.max(0, nowMs - clock.runningSinceMs) / 1000;
  return clock.baseSeconds + running;
}

export function heartbeatCounter(clock: SimClock, nowMs: number): number {
  return Math.floor(runningSeconds(clock, nowMs));
}

/** Epoch ms at which the counter last changed (what a serial log's mtime tells for QEMU). */
export function heartbeatAtMs(clock: SimClock, nowMs: number): number {
  if (clock.runningSinceMs === null) return clock.pausedAtMs ?? nowMs;
  const seconds = runningSeconds(clock, nowMs);
  return Math.max(clock.runningSinceMs, nowMs - (seconds - Math.floor(seconds)) * 1000);
}

export function pauseClock(clock: SimClock, atMs: number): SimClock {
  if (clock.runningSinceMs === null) return clock;
  return { baseSeconds: runningSeconds(clock, atMs), runningSinceMs: null, pausedAtMs: atMs };
}

export function runClock(clock: SimClock, fromMs: number): SimClock {
  return clock.runningSinceMs !== null ? clock : { ...clock, runningSinceMs: fromMs };
}
