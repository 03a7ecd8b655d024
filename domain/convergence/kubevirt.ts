import { completionDeadlineSeconds, migrationDataGigabytes } from '../migration-config.ts';
import {
  initialWatermark,
  precopyGate,
  progressTimeoutAbort,
  trackProgress,
  type ProgressWatermark,
} from './common.ts';
import { mib } from './format.ts';
import type {
  ConvergenceAction,
  ConvergenceContext,
  Sample,
  StartContext,
  StartParameters,
} from './types.ts';

/**
 * KubeVirt's migration monitor (virt-launcher live-migration-source.go, "legacy convergence"):
 * - deadline = completionTimeoutPerGiB x data size (memory + block-migrated disks, decimal GB rounded up);
 * - past the deadline, when workload disruption is allowed (allowWorkloadDisruption, our pauseAllowed;
 *   shouldAssistMigrationToComplete): post-copy if allowed, else pause the guest and double the deadline;
 *   without disruption allowed: abort, post-copy allowed or not;
 * - no progress for progressTimeout seconds: abort; past the (doubled) deadline without a way out: abort;
 * - in post-copy: nothing to track.
 * One deliberate difference: progress is measured against the lowest remaining value seen, where KubeVirt
 * compares with the previous sample (saw-tooth remaining bytes then look like progress forever).
 * The caller polls (KubeVirt: every 400 ms); elapsed seconds are whole seconds, compared with ">", as KubeVirt does.
 */
export interface KubevirtPolicy {
  kind: 'kubevirt';
  completionTimeoutPerGiB: number;
  progressTimeoutSeconds: number;
  /** KubeVirt's default max downtime is 900 ms. */
  initialDowntimeMs: number;
}

export interface KubevirtState {
  kind: 'kubevirt';
  /** Seconds; set from the data size at the first sample, doubled when the guest is paused. */
  deadlineSeconds: number | null;
  watermark: ProgressWatermark;
  paused: boolean;
  postCopy: boolean;
  aborted: boolean;
}

export const initialKubevirtState = (): KubevirtState => ({
  kind: 'kubevirt',
  deadlineSeconds: null,
  watermark: initialWatermark,
  paused: false,
  postCopy: false,
  aborted: false,
});

export function kubevirtStart(policy: KubevirtPolicy, context: StartContext): StartParameters {
  return {
    downtimeMs: policy.initialDowntimeMs,
    bandwidthBytes: context.currentBandwidthBytes,
    autoConverge: context.autoConvergeAllowed,
    xbzrle: false,
    postCopy: context.postCopyAllowed,
    cpuThrottleInitial: null,
    cpuThrottleIncrement: null,
    reason:
      `KubeVirt: downtime ${policy.initialDowntimeMs} ms; deadline ${policy.completionTimeoutPerGiB} s per GB ` +
      `of data; abort after ${policy.progressTimeoutSeconds} s without progress`,
  };
}

export function kubevirtDecide(
  policy: KubevirtPolicy,
  state: KubevirtState,
  sample: Sample,
  context: ConvergenceContext,
): { state: KubevirtState; actions: ConvergenceAction[] } {
  const status = sample.status;
  const notActive = precopyGate(state, status);
  if (notActive) return notActive;

  const dataGb = migrationDataGigabytes(context.memoryBytes, context.localDiskBytes);
  const deadline =
    state.deadlineSeconds ?? completionDeadlineSeconds(policy, context.memoryBytes, context.localDiskBytes);
  const next: KubevirtState = {
    ...state,
    deadlineSeconds: deadline,
    watermark: trackProgress(state.watermark, sample),
  };
  // Post-copy was requested but QEMU has not switched yet: KubeVirt only waits.
  if (next.postCopy) return { state: next, actions: [] };

  const elapsed = Math.floor(sample.atMs / 1000);
  const pastDeadline = deadline > 0 && elapsed > deadline;
  const remaining = mib(status.remainingBytes);
  const deadlineText = next.paused
    ? `${elapsed} s elapsed > doubled completion deadline ${deadline} s`
    : `${elapsed} s elapsed > completion deadline ${deadline} s (${policy.completionTimeoutPerGiB} s/GiB x ${dataGb} GB)`;

  // KubeVirt's shouldAssistMigrationToComplete: only with AllowWorkloadDisruption (pauseAllowed here).
  if (pastDeadline && !next.paused && context.pauseAllowed) {
    if (context.postCopyAllowed) {
      return {
        state: { ...next, postCopy: true },
        actions: [
          {
            type: 'start-post-copy',
            reason: `${deadlineText}, remaining ${remaining}: switching to post-copy`,
          },
        ],
      };
    }
    return {
      state: { ...next, paused: true, deadlineSeconds: deadline * 2 },
      actions: [
        {
          type: 'pause-guest',
          reason:
            `${deadlineText}, remaining ${remaining}, post-copy not allowed: pausing the guest so the copy ` +
            `finishes; deadline doubled to ${deadline * 2} s`,
        },
      ],
    };
  }
  const stalled = progressTimeoutAbort(next.watermark, sample, policy.progressTimeoutSeconds);
  if (stalled) return { state: { ...next, aborted: true }, actions: [stalled] };
  if (pastDeadline) {
    const why = next.paused
      ? 'the guest is already paused'
      : 'workload disruption (post-copy or pausing the guest) is not allowed';
    return {
      state: { ...next, aborted: true },
      actions: [{ type: 'abort', reason: `${deadlineText}, remaining ${remaining}, and ${why}: aborting` }],
    };
  }
  return { state: next, actions: [] };
}
