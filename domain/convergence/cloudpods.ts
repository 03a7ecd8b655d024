import { throttlingStart } from './common.ts';
import { initialQuicklyFinishState, quicklyFinishStep, type QuicklyFinishState } from '../quickly-finish.ts';
import { DEFAULT_DOWNTIME_LIMIT_MS } from '../live-migration.ts';
import { mib, MIB } from './format.ts';
import type {
  ConvergenceAction,
  ConvergenceContext,
  Sample,
  StartContext,
  StartParameters,
} from './types.ts';

/**
 * Cloudpods' SGuestLiveMigrateTask (pkg/hostman/guestman/guesttasks.go):
 * - auto-converge on, cpu-throttle-initial 60, cpu-throttle-increment 20; downtime 300 ms;
 * - quickly-finish (an option), SGuestLiveMigrateTask.onGetMigrateStatus: with RAM remaining and the throttle at
 *   its maximum (99), count from the first sample whose expected downtime exceeds the limit; more than one
 *   round later set the limit to QEMU's expected downtime, and again whenever it grows
 *   (domain/quickly-finish.ts, the same step the engine runs on top of any policy for quickly_finish);
 * - after max(memory MB / 32, 30) seconds (MigrateExpectRate 32 MB/s, MinMigrateTimeoutSeconds 30) the source
 *   guest is stopped so the copy finishes; from then on nothing else is done.
 * Cloudpods starts that timer when the RAM copy starts (after disk mirroring); here it runs from the
 * migration start. The pause is taken only when the context allows pausing.
 */
export interface CloudpodsPolicy {
  kind: 'cloudpods';
  quicklyFinish: boolean;
  initialDowntimeMs: number;
  expectRateMbPerSecond: number;
  minTimeoutSeconds: number;
  cpuThrottleInitial: number;
  cpuThrottleIncrement: number;
}

export interface CloudpodsState {
  kind: 'cloudpods';
  quicklyFinish: QuicklyFinishState;
  paused: boolean;
}

export const initialCloudpodsState = (): CloudpodsState => ({
  kind: 'cloudpods',
  quicklyFinish: { ...initialQuicklyFinishState },
  paused: false,
});

/** max(int(memory MB / 32), 30) seconds. */
export const cloudpodsPauseAfterSeconds = (policy: CloudpodsPolicy, memoryBytes: number): number =>
  Math.max(
    Math.trunc(Math.trunc(memoryBytes / MIB) / policy.expectRateMbPerSecond),
    policy.minTimeoutSeconds,
  );

export const cloudpodsDefaultPolicy = (quicklyFinish: boolean): CloudpodsPolicy => ({
  kind: 'cloudpods',
  quicklyFinish,
  initialDowntimeMs: DEFAULT_DOWNTIME_LIMIT_MS,
  expectRateMbPerSecond: 32,
  minTimeoutSeconds: 30,
  cpuThrottleInitial: 60,
  cpuThrottleIncrement: 20,
});

export function cloudpodsStart(policy: CloudpodsPolicy, context: StartContext): StartParameters {
  const throttle = { initial: policy.cpuThrottleInitial, increment: policy.cpuThrottleIncrement };
  return throttlingStart(
    context,
    policy.initialDowntimeMs,
    throttle,
    (autoConverge) =>
      `Cloudpods: downtime ${policy.initialDowntimeMs} ms, auto-converge ${autoConverge ? `on (throttle ${throttle.initial}% + ${throttle.increment}%)` : 'not allowed'}` +
      `${policy.quicklyFinish ? ', quickly-finish' : ''}; pause after ${cloudpodsPauseAfterSeconds(policy, context.memoryBytes)} s`,
  );
}

export function cloudpodsDecide(
  policy: CloudpodsPolicy,
  state: CloudpodsState,
  sample: Sample,
  context: ConvergenceContext,
): { state: CloudpodsState; actions: ConvergenceAction[] } {
  const status = sample.status;
  if (state.paused || status.status !== 'active') return { state, actions: [] };

  const pauseAfter = cloudpodsPauseAfterSeconds(policy, context.memoryBytes);
  if (sample.atMs > pauseAfter * 1000 && context.pauseAllowed) {
    const memoryMb = Math.trunc(context.memoryBytes / MIB);
    return {
      state: { ...state, paused: true },
      actions: [
        {
          type: 'pause-guest',
          reason:
            `${(sample.atMs / 1000).toFixed(1)} s elapsed > max(${memoryMb} MB / ${policy.expectRateMbPerSecond} MB/s, ` +
            `${policy.minTimeoutSeconds} s) = ${pauseAfter} s, remaining ${mib(status.remainingBytes)}: pausing the guest so the copy finishes`,
        },
      ],
    };
  }
  if (!policy.quicklyFinish) return { state, actions: [] };
  const step = quicklyFinishStep(state.quicklyFinish, status, context.currentDowntimeMs);
  const next = { ...state, quicklyFinish: step.state };
  if (step.setDowntimeMs === undefined) return { state: next, actions: [] };
  return {
    state: next,
    actions: [
      {
        type: 'set-downtime',
        downtimeMs: step.setDowntimeMs,
        reason: `quickly-finish: ${step.reason ?? `downtime ${context.currentDowntimeMs} -> ${step.setDowntimeMs} ms`}`,
      },
    ],
  };
}
