import type { MigrationStatus, MigrationStatusName } from '../agent-contract.ts';
import { DEFAULT_DOWNTIME_LIMIT_MS } from '../live-migration.ts';
import { bytesPerSecondFromMbps, mib, mibPerSecond } from './format.ts';
import type { Sample } from './types.ts';

/**
 * Will the remaining bytes ever fit in the allowed downtime at the rate the copy runs?
 *
 * Pre-copy sends a pass, then what the guest dirtied meanwhile, and switches over at the sync where what is
 * pending fits in downtime x transfer rate. With a dirty rate D and a transfer rate B, each pass is D/B times
 * the previous one: it converges when D/B < 1, but at D/B = 0.9 shrinking 48 MiB to 3 MiB already takes 26
 * passes, and real dirty rates wander, so we call D >= 0.9 B "not converging". QEMU's dirty rate undercounts
 * pages rewritten within one period (a bounded working set), so we also watch what is pending at the start
 * of each pass (the "peaks" of the saw-tooth): three peaks above what fits, the last two still at least 80%
 * of the first (= shrinking by less than about 10% a pass, the same 0.9 bound), is not converging either.
 *
 * Rates are smoothed by an exponentially weighted moving average with a 3 s time constant: at the 0.5 s
 * polling of F5 that is about the last six samples, long enough to ride over a sync, short enough to follow a
 * bandwidth change or the throttle within a pass or two. Everything here is plain data (JSON round-trips).
 */
export const PREDICTOR_TUNING = {
  smoothingMs: 3_000,
  nonConvergingDirtyRatio: 0.9,
  plateauRatio: 0.8,
  plateauPeaks: 3,
  peaksKept: 6,
} as const;

export interface PassPeak {
  /** dirty-sync-count of the pass. */
  pass: number;
  /** The most remaining bytes seen during that pass: what was pending when it started. */
  bytes: number;
}

export interface PredictorState {
  samples: number;
  status: MigrationStatusName | null;
  lastAtMs: number | null;
  lastTransferredBytes: number | null;
  remainingBytes: number;
  /** Smoothed bytes/s actually sent, null until measured. */
  transferRate: number | null;
  /** Smoothed bytes/s dirtied (QEMU's dirty-pages-rate x page size), null until a pass has ended. */
  dirtyRate: number | null;
  /** Highest dirty-sync-count seen. */
  pass: number;
  /** Pending bytes at the start of the recent passes (from pass 2 on), oldest first. */
  peaks: PassPeak[];
}

export const initialPredictorState = (): PredictorState => ({
  samples: 0,
  status: null,
  lastAtMs: null,
  lastTransferredBytes: null,
  remainingBytes: 0,
  transferRate: null,
  dirtyRate: null,
  pass: 0,
  peaks: [],
});

function smooth(previous: number | null, value: number, dtMs: number): number {
  if (previous === null) return value;
  const alpha = 1 - Math.exp(-Math.max(0, dtMs) / PREDICTOR_TUNING.smoothingMs);
  return previous + alpha * (value - previous);
}

/**
 * What was pending when the current pass started. Each pass sends exactly what was pending at its start, so
 * since the previous reading QEMU sent the rest of the previous pass, any whole passes in between, and the
 * start of this one: spread over the passes that began, that is the average pass start, and exactly this
 * pass's start when one pass began. It matters when passes are shorter than the polling interval (a small,
 * hot working set): the remaining bytes read mid-pass would understate every pass.
 */
function passStartEstimate(state: PredictorState, s: MigrationStatus): number {
  const began = s.dirtySyncCount - state.pass;
  if (state.lastTransferredBytes === null || state.pass < 1 || began < 1) return s.remainingBytes;
  const sent = s.transferredBytes - state.lastTransferredBytes;
  const estimate = (sent - state.remainingBytes + s.remainingBytes) / began;
  return Math.max(s.remainingBytes, Math.round(estimate));
}

/** Folds one sample into the predictor state (pure). */
export function observe(state: PredictorState, sample: Sample): PredictorState {
  const s = sample.status;
  const dt = state.lastAtMs === null ? 0 : sample.atMs - state.lastAtMs;
  const next: PredictorState = {
    ...state,
    samples: state.samples + 1,
    status: s.status,
    lastAtMs: sample.atMs,
    lastTransferredBytes: s.transferredBytes,
    remainingBytes: s.remainingBytes,
    pass: Math.max(state.pass, s.dirtySyncCount),
  };
  if (s.status === 'active' || s.status === 'postcopy-active') {
    if (dt > 0 && state.lastTransferredBytes !== null && s.transferredBytes >= state.lastTransferredBytes) {
      next.transferRate = smooth(
        state.transferRate,
        ((s.transferredBytes - state.lastTransferredBytes) * 1000) / dt,
        dt,
      );
    } else if (state.transferRate === null && s.mbps > 0) {
      next.transferRate = bytesPerSecondFromMbps(s.mbps);
    }
  }
  if (s.status === 'active' && s.dirtySyncCount >= 2) {
    // QEMU computes the dirty rate at the syncs: nothing meaningful before the first pass has ended.
    next.dirtyRate = smooth(state.dirtyRate, s.dirtyPagesRate * (s.pageSize || 4096), dt);
    const last = state.peaks[state.peaks.length - 1];
    if (last && last.pass === s.dirtySyncCount) {
      // Within a pass remaining only falls: the first reading is the closest to what was pending at its start.
      if (s.remainingBytes > last.bytes) {
        next.peaks = [...state.peaks.slice(0, -1), { pass: last.pass, bytes: s.remainingBytes }];
      }
    } else if (!last || s.dirtySyncCount > last.pass) {
      next.peaks = [...state.peaks, { pass: s.dirtySyncCount, bytes: passStartEstimate(state, s) }].slice(
        -PREDICTOR_TUNING.peaksKept,
      );
    }
  }
  return next;
}

export interface Prediction {
  verdict: 'converging' | 'not-converging' | 'unknown';
  /** verdict === 'converging'. */
  converging: boolean;
  /** Seconds to completion, null when not converging or unknown. */
  etaSeconds: number | null;
  /**
   * Downtime that would let the copy switch over at the end of the coming pass if it is like the last one
   * (what was pending at the last pass start / transfer rate); null until a pass has ended.
   */
  requiredDowntimeMs: number | null;
  transferRateBytes: number | null;
  dirtyRateBytes: number | null;
  /** Bytes that fit in the downtime limit at the transfer rate. */
  fitBytes: number | null;
  /** Recent pass peaks, oldest first. */
  peaks: number[];
  /** The numbers behind the verdict, for reasons and for the operator. */
  why: string;
}

const list = (values: number[]) => `${values.map((b) => mib(b).replace(' MiB', '')).join(', ')} MiB`;

/** The prediction from a predictor state, for a downtime limit in ms. */
export function predict(state: PredictorState, downtimeLimitMs: number): Prediction {
  const B = state.transferRate;
  const D = state.dirtyRate;
  const R = state.remainingBytes;
  const recent = state.peaks.slice(-PREDICTOR_TUNING.plateauPeaks).map((p) => p.bytes);
  const base = { transferRateBytes: B, dirtyRateBytes: D, peaks: recent };
  const result = (
    verdict: Prediction['verdict'],
    etaSeconds: number | null,
    requiredDowntimeMs: number | null,
    fitBytes: number | null,
    why: string,
  ): Prediction => ({
    verdict,
    converging: verdict === 'converging',
    etaSeconds,
    requiredDowntimeMs,
    fitBytes,
    ...base,
    why,
  });

  if (state.status === 'completed') return result('converging', 0, null, null, 'completed');
  if (state.status === null || state.status === 'none' || state.status === 'setup') {
    return result('unknown', null, null, null, 'the copy has not started');
  }
  if (state.status !== 'active' && state.status !== 'postcopy-active') {
    return result('unknown', null, null, null, `migration ${state.status}`);
  }
  if (B === null) return result('unknown', null, null, null, 'no transfer rate measured yet');
  if (B < 1) {
    return result(
      'not-converging',
      null,
      null,
      0,
      `nothing sent lately (${mibPerSecond(B)}), ${mib(R)} remaining`,
    );
  }
  if (state.status === 'postcopy-active') {
    return result(
      'converging',
      Math.ceil(R / B),
      null,
      null,
      `post-copy: ${mib(R)} left at ${mibPerSecond(B)}`,
    );
  }

  const fit = (B * downtimeLimitMs) / 1000;
  const fitText = `the ${mib(fit)} that fit ${downtimeLimitMs} ms at ${mibPerSecond(B)}`;
  const latest = recent[recent.length - 1];
  if (latest === undefined) {
    return result(
      'converging',
      Math.ceil(R / B),
      null,
      fit,
      `first pass: ${mib(R)} left at ${mibPerSecond(B)}, dirty rate not known until it ends`,
    );
  }
  const required = Math.ceil((latest / B) * 1000);
  const needs = `(needs ~${required} ms)`;
  if (latest <= fit) {
    return result('converging', Math.ceil(R / B), required, fit, `${mib(latest)} pending fits ${fitText}`);
  }
  const previous = recent[recent.length - 2];
  if (previous !== undefined && latest < PREDICTOR_TUNING.plateauRatio * previous) {
    // Seen shrinking by a fifth or more in one pass: whatever the rates say (they lag a bandwidth or
    // throttle change by a few seconds), the copy is gaining.
    const dirtied = ((D ?? 0) * Math.max(0, latest - R)) / B;
    const ratio = latest / previous;
    return result(
      'converging',
      Math.ceil((R + dirtied) / (B * (1 - ratio))),
      required,
      fit,
      `pass peaks ${list(recent)} are shrinking (x${ratio.toFixed(2)} a pass) towards ${fitText}`,
    );
  }
  if (D !== null && D >= PREDICTOR_TUNING.nonConvergingDirtyRatio * B) {
    return result(
      'not-converging',
      null,
      required,
      fit,
      `dirty ${mibPerSecond(D)} >= ${PREDICTOR_TUNING.nonConvergingDirtyRatio * 100}% of transfer ${mibPerSecond(B)}, ` +
        `and ${mib(latest)} pending > ${fitText} ${needs}`,
    );
  }
  const [first, second, third] = recent;
  if (
    first !== undefined &&
    second !== undefined &&
    third !== undefined &&
    recent.every((p) => p > fit) &&
    Math.min(second, third) >= PREDICTOR_TUNING.plateauRatio * first
  ) {
    return result(
      'not-converging',
      null,
      required,
      fit,
      `pass peaks ${list(recent)} are not shrinking and stay above ${fitText} ${needs}`,
    );
  }
  // What QEMU will still have to send: the rest of this pass, plus what the guest dirtied since it began
  // (not in "remaining" until the next sync), and so on, each pass D/B of the one before.
  const dirtied = ((D ?? 0) * Math.max(0, latest - R)) / B;
  const gain = B - (D ?? 0);
  return result(
    'converging',
    Math.ceil((R + dirtied) / gain),
    required,
    fit,
    `${mib(R)} left, gaining ${mibPerSecond(gain)} (transfer ${mibPerSecond(B)} - dirty ${mibPerSecond(D ?? 0)}); ` +
      `pass peaks ${list(recent)} vs ${fitText}`,
  );
}

/**
 * From the samples of a migration so far: converging or not, the ETA, and the downtime it would need.
 * Used for the ETA (F29) and, incrementally (observe + predict), by the predictive convergence policy.
 */
export function predictFinish(
  samples: readonly Sample[],
  options: { downtimeLimitMs?: number } = {},
): Prediction {
  const state = samples.reduce(observe, initialPredictorState());
  return predict(state, options.downtimeLimitMs ?? DEFAULT_DOWNTIME_LIMIT_MS);
}
