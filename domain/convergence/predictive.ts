import {
  completedPasses,
  initialWatermark,
  throttlingStart,
  progressTimeoutAbort,
  trackProgress,
  type ProgressWatermark,
} from './common.ts';
import { mibPerSecond } from './format.ts';
import {
  initialPredictorState,
  observe,
  predict,
  type Prediction,
  type PredictorState,
} from './predictor.ts';
import type {
  ConvergenceAction,
  ConvergenceContext,
  Sample,
  StartContext,
  StartParameters,
} from './types.ts';

/**
 * Our default: predict instead of waiting. At each pass boundary the predictor (predictor.ts) says whether
 * what is pending can ever fit the downtime limit at the transfer rate. After it has said "no" at two
 * consecutive boundaries, with at least three passes done, we climb one rung of the ladder, then give the
 * rung two passes (three for the throttle, which bites progressively) before judging again:
 *   1. bandwidth: raise the cap to the policy's ceiling (auto bandwidth: the whole usable link), if capped lower;
 *   2. downtime: raise the limit to what the predictor says is needed (+25% headroom), if within the ceiling;
 *      at most twice;
 *   3. throttle: with auto-converge on, raise cpu-throttle-increment (and the downtime to its ceiling);
 *   4. post-copy, when allowed;
 *   5. pause the guest, when allowed;
 *   6. abort, saying which rungs were tried and why the others were not available.
 * A migration the predictor calls converging (or cannot judge yet) is never acted on. Independently, no
 * progress against the lowest remaining value seen for progressTimeoutSeconds aborts (a stuck network).
 */
export interface PredictivePolicy {
  kind: 'predictive';
  initialDowntimeMs: number;
  /** The most downtime the ladder may set. */
  downtimeCeilingMs: number;
  /** The most bandwidth the ladder may set, bytes/s; null = leave the cap alone. */
  bandwidthCeilingBytes: number | null;
  /** 0 = no stall abort. */
  progressTimeoutSeconds: number;
  /** Passes that must be done before anything is judged (the first one is the bulk copy). */
  minCompletedPasses: number;
  /** Consecutive "not converging" pass boundaries before a rung is climbed. */
  strikes: number;
  /** Passes a rung is given before the next is considered. */
  cooldownPasses: number;
}

export const PREDICTIVE_DEFAULTS = {
  minCompletedPasses: 3,
  strikes: 2,
  cooldownPasses: 2,
  throttleCooldownPasses: 3,
  downtimeHeadroom: 1.25,
  maxDowntimeRaises: 2,
  /** QEMU's default cpu-throttle-initial / cpu-throttle-increment. */
  cpuThrottleInitial: 20,
  cpuThrottleIncrement: 10,
  raisedThrottleIncrement: 30,
  maxThrottlePercent: 99,
} as const;

export const ladderRungs = ['bandwidth', 'downtime', 'throttle', 'post-copy', 'pause', 'abort'] as const;
export type LadderRung = (typeof ladderRungs)[number];

export interface PredictiveState {
  kind: 'predictive';
  predictor: PredictorState;
  watermark: ProgressWatermark;
  /** dirty-sync-count at the last sample. */
  lastPass: number | null;
  strikes: number;
  /** No rung before this dirty-sync-count. */
  cooldownUntilPass: number;
  /** Index in ladderRungs of the next rung to consider. */
  nextRung: number;
  downtimeRaises: number;
  throttleIncrement: number;
  /** What was done so far, for the abort reason. */
  tried: string[];
  postCopy: boolean;
  paused: boolean;
  aborted: boolean;
}

export const initialPredictiveState = (): PredictiveState => ({
  kind: 'predictive',
  predictor: initialPredictorState(),
  watermark: initialWatermark,
  lastPass: null,
  strikes: 0,
  cooldownUntilPass: 0,
  nextRung: 0,
  downtimeRaises: 0,
  throttleIncrement: PREDICTIVE_DEFAULTS.cpuThrottleIncrement,
  tried: [],
  postCopy: false,
  paused: false,
  aborted: false,
});

export function predictiveStart(policy: PredictivePolicy, context: StartContext): StartParameters {
  return throttlingStart(
    context,
    policy.initialDowntimeMs,
    { initial: PREDICTIVE_DEFAULTS.cpuThrottleInitial, increment: PREDICTIVE_DEFAULTS.cpuThrottleIncrement },
    (autoConverge) =>
      `predictive: downtime ${policy.initialDowntimeMs} ms (may rise to ${policy.downtimeCeilingMs} ms when the ` +
      `copy is predicted not to converge); then ${[
        autoConverge ? 'throttle' : null,
        context.postCopyAllowed ? 'post-copy' : null,
        context.pauseAllowed ? 'pause' : null,
        'abort',
      ]
        .filter((x) => x !== null)
        .join(', ')}`,
  );
}

const roundUp10 = (ms: number) => Math.ceil(ms / 10) * 10;

export function predictiveDecide(
  policy: PredictivePolicy,
  state: PredictiveState,
  sample: Sample,
  context: ConvergenceContext,
): { state: PredictiveState; actions: ConvergenceAction[] } {
  const status = sample.status;
  if (state.aborted) return { state, actions: [] };
  let next: PredictiveState = { ...state, predictor: observe(state.predictor, sample) };
  if (status.status === 'postcopy-active') return { state: { ...next, postCopy: true }, actions: [] };
  if (status.status !== 'active') return { state: next, actions: [] };

  next = { ...next, watermark: trackProgress(next.watermark, sample) };
  const stalled = progressTimeoutAbort(next.watermark, sample, policy.progressTimeoutSeconds);
  if (stalled) return { state: { ...next, aborted: true }, actions: [stalled] };

  const newPass = next.lastPass !== null && status.dirtySyncCount > next.lastPass;
  next = { ...next, lastPass: Math.max(next.lastPass ?? 0, status.dirtySyncCount) };
  if (!newPass) return { state: next, actions: [] };

  const passes = completedPasses(status);
  const prediction = predict(next.predictor, context.currentDowntimeMs);
  if (prediction.verdict !== 'not-converging') return { state: { ...next, strikes: 0 }, actions: [] };
  if (passes < 2) return { state: next, actions: [] };
  next = { ...next, strikes: next.strikes + 1 };
  if (
    next.strikes < policy.strikes ||
    passes < policy.minCompletedPasses ||
    status.dirtySyncCount < next.cooldownUntilPass
  ) {
    return { state: next, actions: [] };
  }
  return climb(policy, next, sample, context, prediction);
}

function climb(
  policy: PredictivePolicy,
  state: PredictiveState,
  sample: Sample,
  context: ConvergenceContext,
  prediction: Prediction,
): { state: PredictiveState; actions: ConvergenceAction[] } {
  const status = sample.status;
  const pass = status.dirtySyncCount;
  const head = `pass ${completedPasses(status)}: will not converge: ${prediction.why}`;
  const skipped: string[] = [];
  const because = () => [head, ...skipped].join('; ');
  const after = (
    rung: number,
    cooldown: number,
    extra: Partial<PredictiveState>,
    done: string,
  ): PredictiveState => ({
    ...state,
    ...extra,
    nextRung: rung,
    strikes: 0,
    cooldownUntilPass: pass + cooldown,
    tried: [...state.tried, done],
  });
  const required = prediction.requiredDowntimeMs;

  for (let i = state.nextRung; i < ladderRungs.length; i++) {
    const rung = ladderRungs[i];
    switch (rung) {
      case 'bandwidth': {
        const ceiling = policy.bandwidthCeilingBytes;
        const current = context.currentBandwidthBytes;
        if (ceiling !== null && current > 0 && ceiling > current) {
          return {
            state: after(i + 1, policy.cooldownPasses, {}, `bandwidth raised to ${mibPerSecond(ceiling)}`),
            actions: [
              {
                type: 'set-bandwidth',
                bandwidthBytes: ceiling,
                reason: `${because()}: bandwidth ${mibPerSecond(current)} -> ${mibPerSecond(ceiling)}`,
              },
            ],
          };
        }
        if (ceiling !== null && current > 0)
          skipped.push(`bandwidth already at its ceiling ${mibPerSecond(ceiling)}`);
        break;
      }
      case 'downtime': {
        if (state.downtimeRaises >= PREDICTIVE_DEFAULTS.maxDowntimeRaises) {
          skipped.push(`downtime already raised ${state.downtimeRaises} times`);
          break;
        }
        if (
          required !== null &&
          required <= policy.downtimeCeilingMs &&
          required > context.currentDowntimeMs
        ) {
          const target = Math.min(
            policy.downtimeCeilingMs,
            roundUp10(required * PREDICTIVE_DEFAULTS.downtimeHeadroom),
          );
          return {
            state: after(
              i,
              policy.cooldownPasses,
              { downtimeRaises: state.downtimeRaises + 1 },
              `downtime raised to ${target} ms`,
            ),
            actions: [
              {
                type: 'set-downtime',
                downtimeMs: target,
                reason: `${because()}: downtime ${context.currentDowntimeMs} -> ${target} ms (ceiling ${policy.downtimeCeilingMs} ms)`,
              },
            ],
          };
        }
        skipped.push(
          required === null
            ? 'needed downtime unknown'
            : required <= context.currentDowntimeMs
              ? `the ${context.currentDowntimeMs} ms in force already covers the least pending seen (~${required} ms)`
              : `needs ~${required} ms of downtime, the policy allows ${policy.downtimeCeilingMs} ms`,
        );
        break;
      }
      case 'throttle': {
        const throttle = status.cpuThrottlePercentage ?? 0;
        if (!context.autoConvergeAllowed) {
          skipped.push('auto-converge not allowed');
          break;
        }
        if (throttle >= PREDICTIVE_DEFAULTS.maxThrottlePercent) {
          skipped.push(`CPU throttle already at ${throttle}%`);
          break;
        }
        const increment = Math.min(
          PREDICTIVE_DEFAULTS.maxThrottlePercent,
          Math.max(PREDICTIVE_DEFAULTS.raisedThrottleIncrement, state.throttleIncrement * 2),
        );
        const actions: ConvergenceAction[] = [];
        if (context.currentDowntimeMs < policy.downtimeCeilingMs) {
          actions.push({
            type: 'set-downtime',
            downtimeMs: policy.downtimeCeilingMs,
            reason: `${because()}: downtime ${context.currentDowntimeMs} -> ${policy.downtimeCeilingMs} ms (its ceiling) while throttling`,
          });
        }
        actions.push({
          type: 'raise-throttle',
          cpuThrottleIncrement: increment,
          reason: `${because()}: CPU throttle at ${throttle}%, increment ${state.throttleIncrement} -> ${increment}%`,
        });
        return {
          state: after(
            i + 1,
            PREDICTIVE_DEFAULTS.throttleCooldownPasses,
            { throttleIncrement: increment },
            `throttle increment raised to ${increment}%`,
          ),
          actions,
        };
      }
      case 'post-copy':
        if (!context.postCopyAllowed) {
          skipped.push('post-copy not allowed');
          break;
        }
        return {
          state: after(i + 1, policy.cooldownPasses, { postCopy: true }, 'post-copy requested'),
          actions: [{ type: 'start-post-copy', reason: `${because()}: switching to post-copy` }],
        };
      case 'pause':
        if (!context.pauseAllowed) {
          skipped.push('pausing the guest not allowed');
          break;
        }
        return {
          state: after(i + 1, policy.cooldownPasses, { paused: true }, 'guest paused'),
          actions: [{ type: 'pause-guest', reason: `${because()}: pausing the guest so the copy finishes` }],
        };
      case 'abort': {
        const tried = state.tried.length > 0 ? `; tried: ${state.tried.join(', ')}` : '';
        return {
          state: { ...after(i + 1, 0, {}, 'aborted'), aborted: true },
          actions: [{ type: 'abort', reason: `${because()}${tried}: nothing left to try, aborting` }],
        };
      }
    }
  }
  return { state, actions: [] };
}
