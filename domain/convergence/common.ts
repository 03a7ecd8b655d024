import type { MigrationStatus } from '../agent-contract.ts';
import { bytesPerSecondFromMbps, mib } from './format.ts';
import type { ConvergenceAction, Sample } from './types.ts';

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
