import type { MigrationStatus } from '../agent-contract.ts';

/** One normalised query-migrate reading, with the time since the migration started. */
export interface Sample {
  /** Milliseconds elapsed since the migration started (the caller's clock, not QEMU's). */
  atMs: number;
  status: MigrationStatus;
}

/** What the engine knows about the guest and what it may do, when the migration starts. */
export interface StartContext {
  memoryBytes: number;
  /** Local disks copied by block migration; 0 with shared storage. */
  localDiskBytes: number;
  /** The same disks one by one, for Nova's "each disk counts at least 2 GiB"; defaults to one disk of localDiskBytes. */
  localDiskSizesBytes?: readonly number[];
  /** The bandwidth cap in force, bytes/s; 0 = none (QEMU's default or the link). */
  currentBandwidthBytes: number;
  /** Post-copy may be started (the postcopy-ram capability is then set on both sides before migrate). */
  postCopyAllowed: boolean;
  /** The guest may be paused to let the copy finish (workload disruption allowed). */
  pauseAllowed: boolean;
  /** QEMU auto-converge (vCPU throttling) may be enabled. */
  autoConvergeAllowed: boolean;
  /**
   * KubeVirt's completionTimeoutPerGiB, enforced by the engine under every policy: past this many seconds per
   * (decimal, rounded up) GB of memory plus block-migrated disks, with workload disruption allowed
   * (pauseAllowed) post-copy when allowed, else pause (deadline doubled); otherwise abort. 0 or absent (plans
   * frozen before it existed) = no deadline.
   */
  completionTimeoutPerGiB?: number;
  /**
   * The request's quickly_finish: Cloudpods' quickly-finish runs on top of the policy (the policy's own
   * actions win on conflict). Absent = off.
   */
  quicklyFinish?: boolean;
}

/** The start context plus what is in force right now; the caller keeps these up to date as it applies actions. */
export interface ConvergenceContext extends StartContext {
  /** The downtime-limit in force, ms. */
  currentDowntimeMs: number;
}

interface WithReason {
  /** Why, with the numbers that triggered it: recorded on the migration for the operator. */
  reason: string;
}

export type ConvergenceAction =
  | ({ type: 'set-downtime'; downtimeMs: number } & WithReason)
  | ({ type: 'set-bandwidth'; bandwidthBytes: number } & WithReason)
  | ({ type: 'raise-throttle'; cpuThrottleIncrement: number } & WithReason)
  | ({ type: 'start-post-copy' } & WithReason)
  | ({ type: 'pause-guest' } & WithReason)
  | ({ type: 'abort' } & WithReason);

export type ConvergenceActionType = ConvergenceAction['type'];

/** How a migration starts under a policy: QMP migrate-set-parameters / migrate-set-capabilities before migrate. */
export interface StartParameters {
  downtimeMs: number;
  /** Bytes/s; 0 = leave QEMU's default / no cap. */
  bandwidthBytes: number;
  autoConverge: boolean;
  xbzrle: boolean;
  /** postcopy-ram capability, on both sides. */
  postCopy: boolean;
  /** cpu-throttle-initial / cpu-throttle-increment, when auto-converge is on and the policy sets them. */
  cpuThrottleInitial: number | null;
  cpuThrottleIncrement: number | null;
  reason: string;
}
