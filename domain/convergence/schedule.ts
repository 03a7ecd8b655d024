import { z } from 'zod';
import { QEMU_MAX_DOWNTIME_MS } from '../migration-config.ts';
import { linkRate, precopyGate } from './common.ts';
import { mib, mibPerSecond } from './format.ts';
import type {
  ConvergenceAction,
  ConvergenceContext,
  Sample,
  StartContext,
  StartParameters,
} from './types.ts';

/**
 * oVirt/vdsm convergence schedules: an initial downtime, then actions keyed by memory passes ("past pass k set
 * downtime X"), ending in post-copy or abort. The engine-side rules, as vdsm runs them (lib/vdsm/virt/migration.py,
 * MonitorThread.monitor_migration and _next_action):
 * - the count: vdsm records libvirt's memory_iteration (QEMU's dirty-sync-count) at the first sample of the
 *   running job (`initial_iteration`), and on each later sample where it grew computes
 *   `current_iteration = last_iteration - initial_iteration`. Here: dirty-sync-count now minus dirty-sync-count
 *   at the first active sample (normally 1, the first pass, so the count is the completed passes);
 * - the comparison is strict: the head step runs when `head['limit'] < current_iteration`, so a step with
 *   afterPass k (oVirt's stallingLimit k) runs once MORE than k passes went by, at k + 1, not at k;
 * - steps run in order, at most ONE per sample that saw a new pass (vdsm pops one item per new iteration);
 *   oVirt's "lastItems" are sent with limit -1, i.e. each runs at the next new pass after the step before it:
 *   written here as the next pass numbers, which the strict comparison makes the same thing;
 * - nothing runs once post-copy is running; a post-copy step that did not take is followed by the next step;
 * - ours, not vdsm's: a post-copy or pause step the migration is not allowed to take is skipped, and the next
 *   eligible step runs at the same pass (so a post-copy policy without post-copy aborts where it would have
 *   switched).
 * A step with afterPass 0 is the initial downtime, applied before migrate.
 */
export type ScheduleStep = { afterPass: number } & (
  | { action: 'set-downtime'; downtimeMs: number }
  | { action: 'post-copy' }
  | { action: 'pause' }
  | { action: 'abort' }
);

const afterPass = z
  .number({ error: 'a whole number of completed memory passes' })
  .int('a whole number of completed memory passes')
  .min(0, 'a whole number of completed memory passes (0 = before the migration starts)')
  .max(10_000, 'at most 10000 passes');

export const scheduleStepSchema = z.discriminatedUnion(
  'action',
  [
    z.strictObject({
      afterPass,
      action: z.literal('set-downtime'),
      downtimeMs: z
        .number({ error: 'a whole number of milliseconds' })
        .int('a whole number of milliseconds')
        .min(1, 'at least 1 ms')
        .max(QEMU_MAX_DOWNTIME_MS, `at most ${QEMU_MAX_DOWNTIME_MS} ms (QEMU's limit)`),
    }),
    z.strictObject({ afterPass, action: z.literal('post-copy') }),
    z.strictObject({ afterPass, action: z.literal('pause') }),
    z.strictObject({ afterPass, action: z.literal('abort') }),
  ],
  { error: "one of 'set-downtime' (with downtimeMs), 'post-copy', 'pause', 'abort'" },
);

/** An operator's schedule: steps in order of afterPass; at most one initial (pass 0) downtime; nothing after abort. */
export const scheduleSchema = z
  .array(scheduleStepSchema, { error: 'a list of schedule steps' })
  .min(1, 'at least one step')
  .max(100, 'at most 100 steps')
  .superRefine((steps, ctx) => {
    steps.forEach((step, i) => {
      const previous = steps[i - 1];
      if (previous && step.afterPass < previous.afterPass) {
        ctx.addIssue({
          code: 'custom',
          path: [i, 'afterPass'],
          message: `steps must be in pass order: ${step.afterPass} comes after ${previous.afterPass}`,
        });
      }
      if (step.afterPass === 0 && step.action !== 'set-downtime') {
        ctx.addIssue({
          code: 'custom',
          path: [i, 'action'],
          message: 'only set-downtime can run before the migration starts (afterPass 0)',
        });
      }
      if (step.afterPass === 0 && steps.slice(0, i).some((s) => s.afterPass === 0)) {
        ctx.addIssue({
          code: 'custom',
          path: [i, 'afterPass'],
          message: 'only one initial (afterPass 0) downtime',
        });
      }
      if (previous && steps.slice(0, i).some((s) => s.action === 'abort')) {
        ctx.addIssue({ code: 'custom', path: [i], message: 'no step can follow an abort' });
      }
    });
  });

export interface SchedulePolicy {
  kind: 'schedule';
  /** The schedule's name, for reasons: 'minimal-downtime', or the operator policy's name. */
  name: string;
  initialDowntimeMs: number;
  /** Steps after the start (afterPass >= 1), in order. */
  steps: ScheduleStep[];
  autoConverge: boolean;
  /** XBZRLE compression (oVirt: only "suspend workload if needed"). */
  compression: boolean;
}

export interface ScheduleState {
  kind: 'schedule';
  /** dirty-sync-count at the last sample, null before the first. */
  lastPass: number | null;
  /**
   * dirty-sync-count at the first active sample, vdsm's `initial_iteration`; null before it. A state saved
   * before this field existed counts from 1.
   */
  firstPass: number | null;
  nextStep: number;
  postCopy: boolean;
  aborted: boolean;
}

export const initialScheduleState = (): ScheduleState => ({
  kind: 'schedule',
  lastPass: null,
  firstPass: null,
  nextStep: 0,
  postCopy: false,
  aborted: false,
});

/** A schedule policy from operator steps: a pass-0 step is the initial downtime, else `defaultInitialDowntimeMs`. */
export function schedulePolicy(
  name: string,
  steps: readonly ScheduleStep[],
  options: { defaultInitialDowntimeMs: number; autoConverge?: boolean; compression?: boolean },
): SchedulePolicy {
  const initial = steps.find((s) => s.afterPass === 0 && s.action === 'set-downtime');
  return {
    kind: 'schedule',
    name,
    initialDowntimeMs:
      initial && initial.action === 'set-downtime' ? initial.downtimeMs : options.defaultInitialDowntimeMs,
    steps: steps.filter((s) => s.afterPass > 0).map((s) => ({ ...s })),
    autoConverge: options.autoConverge ?? true,
    compression: options.compression ?? false,
  };
}

const downtimes = (pairs: [number, number][]): ScheduleStep[] =>
  pairs.map(([pass, downtimeMs]) => ({ afterPass: pass, action: 'set-downtime', downtimeMs }));

/** oVirt's shipped policies (ovirt-engine MigrationPolicies config, 4.8), in our step form. */
export const ovirtSchedules = {
  /** "Minimal downtime": 100 ms, then 150/200/300/400/500 after passes 1/2/3/4/6, then abort. */
  'minimal-downtime': schedulePolicy(
    'minimal-downtime',
    [
      ...downtimes([
        [0, 100],
        [1, 150],
        [2, 200],
        [3, 300],
        [4, 400],
        [6, 500],
      ]),
      { afterPass: 7, action: 'abort' },
    ],
    { defaultInitialDowntimeMs: 100 },
  ),
  /** "Post-copy migration": 100 ms, 150 and 200 after passes 1 and 2, then post-copy (abort if it cannot). */
  'post-copy': schedulePolicy(
    'post-copy',
    [
      ...downtimes([
        [0, 100],
        [1, 150],
        [2, 200],
      ]),
      { afterPass: 3, action: 'post-copy' },
      { afterPass: 4, action: 'abort' },
    ],
    { defaultInitialDowntimeMs: 100 },
  ),
  /** "Suspend workload if needed": as minimal downtime, then 5000 ms, then abort; with compression. */
  'suspend-workload': schedulePolicy(
    'suspend-workload',
    [
      ...downtimes([
        [0, 100],
        [1, 150],
        [2, 200],
        [3, 300],
        [4, 400],
        [6, 500],
        [7, 5000],
      ]),
      { afterPass: 8, action: 'abort' },
    ],
    { defaultInitialDowntimeMs: 100, compression: true },
  ),
  /** "Very large VMs": 300 ms, then 400/500/700/1000/1500 after passes 1/2/3/4/6, then 5000 ms, then abort. */
  'large-vms': schedulePolicy(
    'large-vms',
    [
      ...downtimes([
        [0, 300],
        [1, 400],
        [2, 500],
        [3, 700],
        [4, 1000],
        [6, 1500],
        [7, 5000],
      ]),
      { afterPass: 8, action: 'abort' },
    ],
    { defaultInitialDowntimeMs: 300 },
  ),
} satisfies Record<string, SchedulePolicy>;

/** The largest downtime a schedule may set. */
export const scheduleMaxDowntimeMs = (policy: SchedulePolicy): number =>
  policy.steps.reduce(
    (max, s) => (s.action === 'set-downtime' ? Math.max(max, s.downtimeMs) : max),
    policy.initialDowntimeMs,
  );

export function scheduleStart(policy: SchedulePolicy, context: StartContext): StartParameters {
  return {
    downtimeMs: policy.initialDowntimeMs,
    bandwidthBytes: context.currentBandwidthBytes,
    autoConverge: policy.autoConverge && context.autoConvergeAllowed,
    xbzrle: policy.compression,
    postCopy: context.postCopyAllowed,
    cpuThrottleInitial: null,
    cpuThrottleIncrement: null,
    reason:
      `schedule '${policy.name}': initial downtime ${policy.initialDowntimeMs} ms, then ` +
      policy.steps
        .map(
          (s) => `${s.action === 'set-downtime' ? `${s.downtimeMs} ms` : s.action} after pass ${s.afterPass}`,
        )
        .join(', '),
  };
}

export function scheduleDecide(
  policy: SchedulePolicy,
  state: ScheduleState,
  sample: Sample,
  context: ConvergenceContext,
): { state: ScheduleState; actions: ConvergenceAction[] } {
  const status = sample.status;
  const notActive = precopyGate(state, status);
  if (notActive) return notActive;

  const newPass = state.lastPass !== null && status.dirtySyncCount > state.lastPass;
  // vdsm's initial_iteration: the count at the first sample; an older state (without it) counted from 1.
  const firstPass =
    state.lastPass === null ? status.dirtySyncCount : ((state as Partial<ScheduleState>).firstPass ?? 1);
  let next: ScheduleState = {
    ...state,
    firstPass,
    lastPass: Math.max(state.lastPass ?? 0, status.dirtySyncCount),
  };
  if (!newPass) return { state: next, actions: [] };

  // vdsm's current_iteration.
  const passes = status.dirtySyncCount - firstPass;
  const rate = linkRate(status, context.currentBandwidthBytes);
  const head =
    `pass ${passes} done without switching over (dirty-sync-count ${status.dirtySyncCount}, ${firstPass} at ` +
    `the first sample): ${mib(status.remainingBytes)} remaining, ` +
    (rate === null
      ? `link rate unknown, downtime ${context.currentDowntimeMs} ms`
      : `${mib((rate * context.currentDowntimeMs) / 1000)} fit ${context.currentDowntimeMs} ms at ${mibPerSecond(rate)}`);
  const skipped: string[] = [];
  for (let i = next.nextStep; i < policy.steps.length; i++) {
    const step = policy.steps[i];
    // A skipped step's slot goes to the next one, whatever its pass.
    // vdsm: `if head['limit'] < stalling` runs the head; here afterPass < passes.
    if (!step || (skipped.length === 0 && passes <= step.afterPass)) break;
    next = { ...next, nextStep: i + 1 };
    const because = [head, ...skipped].join('; ');
    switch (step.action) {
      case 'set-downtime':
        if (step.downtimeMs === context.currentDowntimeMs) {
          return { state: next, actions: [] };
        }
        return {
          state: next,
          actions: [
            {
              type: 'set-downtime',
              downtimeMs: step.downtimeMs,
              reason: `${because}; schedule '${policy.name}' (more than ${step.afterPass} passes): downtime ${context.currentDowntimeMs} -> ${step.downtimeMs} ms`,
            },
          ],
        };
      case 'post-copy':
        if (!context.postCopyAllowed) {
          skipped.push(
            `schedule '${policy.name}' would switch to post-copy after more than ${step.afterPass} passes, but post-copy is not allowed`,
          );
          continue;
        }
        return {
          state: { ...next, postCopy: true },
          actions: [
            {
              type: 'start-post-copy',
              reason: `${because}; schedule '${policy.name}' (more than ${step.afterPass} passes): switching to post-copy`,
            },
          ],
        };
      case 'pause':
        if (!context.pauseAllowed) {
          skipped.push(
            `schedule '${policy.name}' would pause the guest after more than ${step.afterPass} passes, but pausing is not allowed`,
          );
          continue;
        }
        return {
          state: next,
          actions: [
            {
              type: 'pause-guest',
              reason: `${because}; schedule '${policy.name}' (more than ${step.afterPass} passes): pausing the guest`,
            },
          ],
        };
      case 'abort':
        return {
          state: { ...next, aborted: true },
          actions: [
            {
              type: 'abort',
              reason: `${because}; schedule '${policy.name}' reaches its abort step (more than ${step.afterPass} passes): aborting`,
            },
          ],
        };
    }
  }
  return { state: next, actions: [] };
}
