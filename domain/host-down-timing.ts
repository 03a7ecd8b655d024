/**
 * How long a host-down run waits, once the host's key is gone, before anything of it starts elsewhere. The
 * agent fences its guests before its lease can expire (domain/fencing.ts), and the key vanishes only at the
 * expiry, so the fencing is done when the run starts; the margin covers agent clocks that run slow against
 * etcd's (a lease's TTL is measured on both sides) and a fence that was still killing QEMU at the expiry.
 */
export interface HostDownTimings {
  fencingMarginMs: number;
}

export const DEFAULT_HOST_DOWN_TIMINGS: HostDownTimings = { fencingMarginMs: 2_000 };

/** The margin is never less than the default's floor: a configuration cannot make a rescue race a fence. */
export const MIN_FENCING_MARGIN_MS = 1_000;

export function fencingWaitMs(timings: HostDownTimings): number {
  return Math.max(MIN_FENCING_MARGIN_MS, timings.fencingMarginMs);
}
