import { precopyGate } from './common.ts';
import { mib, MIB } from './format.ts';
import type {
  ConvergenceAction,
  ConvergenceContext,
  Sample,
  StartContext,
  StartParameters,
} from './types.ts';

const GIB = 1024 * MIB;

/**
 * OpenStack Nova's libvirt live-migration monitor (nova/virt/libvirt/driver.py and migration.py):
 * - data = memory + each block-migrated disk, in GiB, each counted as at least 2 GiB;
 * - downtime steps: delay = int(S x data), base = D / N, offset = (D - base) / N, step i (0..N) sets downtime
 *   int(base + offset x i) once the elapsed seconds exceed int(delay x i);
 * - completion timeout = int(800 x data) seconds: abort (default) or force-complete (post-copy when
 *   permitted, else pause the guest); never while in post-copy;
 * - auto-converge only when post-copy is off.
 */
export interface NovaPolicy {
  kind: 'nova';
  /** live_migration_downtime (ms), live_migration_downtime_steps, live_migration_downtime_delay (s/GiB). */
  downtimeMs: number;
  downtimeSteps: number;
  downtimeDelaySecondsPerGiB: number;
  /** live_migration_completion_timeout (s/GiB); 0 disables it. */
  completionTimeoutSecondsPerGiB: number;
  /** live_migration_timeout_action. */
  timeoutAction: 'abort' | 'force-complete';
  /** live_migration_permit_auto_converge. */
  permitAutoConverge: boolean;
}

export interface NovaState {
  kind: 'nova';
  timeoutHandled: boolean;
  postCopy: boolean;
  aborted: boolean;
}

export const initialNovaState = (): NovaState => ({
  kind: 'nova',
  timeoutHandled: false,
  postCopy: false,
  aborted: false,
});

/** Nova's _live_migration_data_gb: GiB of memory and of each migrated disk, each at least 2. */
export function novaDataGb(
  context: Pick<StartContext, 'memoryBytes' | 'localDiskBytes' | 'localDiskSizesBytes'>,
) {
  const disks = context.localDiskSizesBytes ?? (context.localDiskBytes > 0 ? [context.localDiskBytes] : []);
  return disks.reduce((sum, bytes) => sum + Math.max(2, bytes / GIB), Math.max(2, context.memoryBytes / GIB));
}

export interface NovaDowntimeStep {
  /** The step applies once the elapsed seconds exceed this. */
  afterSeconds: number;
  downtimeMs: number;
}

/** nova.virt.libvirt.migration.downtime_steps, with Python's int() truncation. */
export function novaDowntimeSteps(policy: NovaPolicy, dataGb: number): NovaDowntimeStep[] {
  const delay = Math.trunc(policy.downtimeDelaySecondsPerGiB * dataGb);
  const base = policy.downtimeMs / policy.downtimeSteps;
  const offset = (policy.downtimeMs - base) / policy.downtimeSteps;
  return Array.from({ length: policy.downtimeSteps + 1 }, (_, i) => ({
    afterSeconds: Math.trunc(delay * i),
    downtimeMs: Math.trunc(base + offset * i),
  }));
}

export const novaCompletionTimeoutSeconds = (policy: NovaPolicy, dataGb: number): number =>
  Math.trunc(policy.completionTimeoutSecondsPerGiB * dataGb);

export function novaStart(policy: NovaPolicy, context: StartContext): StartParameters {
  const dataGb = novaDataGb(context);
  const first = novaDowntimeSteps(policy, dataGb)[0];
  const autoConverge = policy.permitAutoConverge && context.autoConvergeAllowed && !context.postCopyAllowed;
  return {
    downtimeMs: first?.downtimeMs ?? policy.downtimeMs,
    bandwidthBytes: context.currentBandwidthBytes,
    autoConverge,
    xbzrle: false,
    postCopy: context.postCopyAllowed,
    cpuThrottleInitial: null,
    cpuThrottleIncrement: null,
    reason:
      `Nova: ${dataGb.toFixed(2)} GiB of data; downtime ${first?.downtimeMs ?? policy.downtimeMs} ms rising ` +
      `to ${policy.downtimeMs} ms in ${policy.downtimeSteps} steps; completion timeout ` +
      `${novaCompletionTimeoutSeconds(policy, dataGb)} s then ${policy.timeoutAction}` +
      (policy.permitAutoConverge && context.postCopyAllowed
        ? '; auto-converge off because post-copy is on'
        : ''),
  };
}

export function novaDecide(
  policy: NovaPolicy,
  state: NovaState,
  sample: Sample,
  context: ConvergenceContext,
): { state: NovaState; actions: ConvergenceAction[] } {
  const status = sample.status;
  const notActive = precopyGate(state, status);
  if (notActive) return notActive;
  if (state.postCopy) return { state, actions: [] };

  const dataGb = novaDataGb(context);
  const elapsed = sample.atMs / 1000;
  const timeout = novaCompletionTimeoutSeconds(policy, dataGb);
  let next = state;
  const actions: ConvergenceAction[] = [];

  if (timeout > 0 && elapsed > timeout && !state.timeoutHandled) {
    const head =
      `${elapsed.toFixed(1)} s elapsed > completion timeout ${timeout} s ` +
      `(${policy.completionTimeoutSecondsPerGiB} s/GiB x ${dataGb.toFixed(2)} GiB), remaining ${mib(status.remainingBytes)}`;
    next = { ...next, timeoutHandled: true };
    if (policy.timeoutAction === 'abort') {
      return { state: { ...next, aborted: true }, actions: [{ type: 'abort', reason: `${head}: aborting` }] };
    }
    if (context.postCopyAllowed) {
      next = { ...next, postCopy: true };
      return {
        state: next,
        actions: [{ type: 'start-post-copy', reason: `${head}: forcing completion with post-copy` }],
      };
    }
    if (context.pauseAllowed) {
      actions.push({
        type: 'pause-guest',
        reason: `${head}: forcing completion by pausing the guest (post-copy not permitted)`,
      });
    } else {
      return {
        state: { ...next, aborted: true },
        actions: [
          {
            type: 'abort',
            reason: `${head}: cannot force completion (neither post-copy nor pausing the guest is allowed): aborting`,
          },
        ],
      };
    }
  }

  const steps = novaDowntimeSteps(policy, dataGb);
  let index = -1;
  steps.forEach((step, i) => {
    if (elapsed > step.afterSeconds) index = i;
  });
  const step = steps[index];
  if (step && step.downtimeMs !== context.currentDowntimeMs) {
    actions.push({
      type: 'set-downtime',
      downtimeMs: step.downtimeMs,
      reason:
        `${elapsed.toFixed(1)} s elapsed > ${step.afterSeconds} s: step ${index} of ${policy.downtimeSteps} ` +
        `(every ${steps[1]?.afterSeconds ?? 0} s = ${policy.downtimeDelaySecondsPerGiB} s/GiB x ` +
        `${dataGb.toFixed(2)} GiB), remaining ${mib(status.remainingBytes)}: downtime ` +
        `${context.currentDowntimeMs} -> ${step.downtimeMs} ms`,
    });
  }
  return { state: next, actions };
}
