import type { MigrationStatus } from '../agent-contract.ts';
import { bytesPerSecondFromMbps, mib } from './format.ts';
import type { ConvergenceAction, Sample, StartContext, StartParameters } from './types.ts';

/**
 * Memory passes QEMU has finished. dirty-sync-count is 1 while the first pass (all memory) is sent and goes up
 * by one at the bitmap sync that ends each pass, so the finished passes are one less.
 */
export const completedPasses = (status: MigrationStatus): number => Math.max(0, status.dirtySyncCount - 1);

/** The rate the copy runs at: QEMU's measured mbps, else the cap in force, else unknown. */
export function linkRate(status: MigrationStatus, currentBandwidthBytes: number): number | null {
  if (status.mbps > 0) return bytesPerSecondFromMbps(status.mbps);
  return currentBandwidthBytes > 0 ? currentBandwidthBytes : null;
}

/**
 * Progress measured against the LOWEST remaining value seen, not the previous sample: remaining bytes
 * saw-tooth (they fall during a pass and jump back at each sync), and comparing with the previous sample would
 * count every fall as progress and never time out.
 */
export interface ProgressWatermark {
  lowestRemainingBytes: number | null;
  /** When the lowest value was seen (ms since start); 0 until then, the timer starting with the migration. */
  lowestAtMs: number;
}

export const initialWatermark: ProgressWatermark = { lowestRemainingBytes: null, lowestAtMs: 0 };

export function trackProgress(watermark: ProgressWatermark, sample: Sample): ProgressWatermark {
  const remaining = sample.status.remainingBytes;
  if (watermark.lowestRemainingBytes === null || remaining < watermark.lowestRemainingBytes) {
    return { lowestRemainingBytes: remaining, lowestAtMs: sample.atMs };
  }
  return watermark;
}

/** Whole seconds since the last progress, as KubeVirt counts them. */
export const secondsWithoutProgress = (watermark: ProgressWatermark, atMs: number): number =>
  Math.floor((atMs - watermark.lowestAtMs) / 1000);

/** "no progress for 151 s (progressTimeout 150 s): remaining 48.2 MiB has not fallen below 9.6 MiB, the lowest seen, at 12.4 s". */
export function stallReason(watermark: ProgressWatermark, sample: Sample, timeoutSeconds: number): string {
  const lowest = watermark.lowestRemainingBytes ?? sample.status.remainingBytes;
  return (
    `no progress for ${secondsWithoutProgress(watermark, sample.atMs)} s (progress timeout ${timeoutSeconds} s): ` +
    `remaining ${mib(sample.status.remainingBytes)} has not fallen below ${mib(lowest)}, the lowest seen, ` +
    `at ${(watermark.lowestAtMs / 1000).toFixed(1)} s`
  );
}

/** KubeVirt's progressTimeout (0 = never): no new lowest remaining value for that long aborts the migration. */
export function progressTimeoutAbort(
  watermark: ProgressWatermark,
  sample: Sample,
  timeoutSeconds: number,
): ConvergenceAction | null {
  if (timeoutSeconds <= 0 || secondsWithoutProgress(watermark, sample.atMs) <= timeoutSeconds) return null;
  return { type: 'abort', reason: `${stallReason(watermark, sample, timeoutSeconds)}: aborting` };
}

/**
 * What every policy does before deciding on a sample: nothing more once it aborted, post-copy noted, and
 * only an active pre-copy is acted on. Null: the sample is for the policy to decide on.
 */
export function precopyGate<S extends { aborted: boolean; postCopy: boolean }>(
  state: S,
  status: MigrationStatus,
): { state: S; actions: ConvergenceAction[] } | null {
  if (state.aborted) return { state, actions: [] };
  if (status.status === 'postcopy-active') return { state: { ...state, postCopy: true }, actions: [] };
  if (status.status !== 'active') return { state, actions: [] };
  return null;
}

/** Start parameters of a policy that starts at one downtime and may throttle with auto-converge. */
export function throttlingStart(
  context: StartContext,
  downtimeMs: number,
  throttle: { initial: number; increment: number },
  reason: (autoConverge: boolean) => string,
): StartParameters {
  const autoConverge = context.autoConvergeAllowed;
  return {
    downtimeMs,
    bandwidthBytes: context.currentBandwidthBytes,
    autoConverge,
    xbzrle: false,
    postCopy: context.postCopyAllowed,
    cpuThrottleInitial: autoConverge ? throttle.initial : null,
    cpuThrottleIncrement: autoConverge ? throttle.increment : null,
    reason: reason(autoConverge),
  };
}
