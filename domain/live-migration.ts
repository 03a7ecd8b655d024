import type { MigrationStatus } from './agent-contract.ts';

/** Cloudpods' default maximum downtime for the final copy. */
export const DEFAULT_DOWNTIME_LIMIT_MS = 300;

/** The options of `server-live-migrate`, as in the Cloudpods climc seed. */
export interface LiveMigrateOptions {
  preferHost: string | null;
  skipCpuCheck: boolean;
  skipKernelCheck: boolean;
  enableTls: boolean;
  quicklyFinish: boolean;
  /** MB/s; null = unlimited. */
  maxBandwidthMb: number | null;
  keepDestGuestOnFailed: boolean;
}

/** A migration nobody tuned: the scheduler's choice of host, every check, no cap beyond the policy's. */
export const DEFAULT_LIVE_MIGRATE_OPTIONS: LiveMigrateOptions = {
  preferHost: null,
  skipCpuCheck: false,
  skipKernelCheck: false,
  enableTls: false,
  quicklyFinish: false,
  maxBandwidthMb: null,
  keepDestGuestOnFailed: false,
};

/** Every timer of a live migration, as an input so tests can run them small. */
export interface LiveMigrationTimings {
  pollIntervalMs: number;
  progressSaveIntervalMs: number;
  activityHeartbeatTimeoutMs: number;
  aliveCheckTimeoutMs: number;
  /** How long the API waits for the pre-checks before it answers 202 anyway. */
  precheckAnswerTimeoutMs: number;
  /** A migration slot not renewed for this long goes back to the cluster. */
  slotLeaseMs: number;
  slotRenewIntervalMs: number;
}

export const DEFAULT_TIMINGS: LiveMigrationTimings = {
  pollIntervalMs: 500,
  progressSaveIntervalMs: 2_000,
  activityHeartbeatTimeoutMs: 10_000,
  aliveCheckTimeoutMs: 60_000,
  precheckAnswerTimeoutMs: 15_000,
  slotLeaseMs: 60_000,
  slotRenewIntervalMs: 10_000,
};

/**
 * The monitor's agent calls give up well inside its heartbeat timeout: a poll that outlived it would let the
 * retried monitor and this one act on the same migration at once.
 */
export function monitorAgentTimeoutMs(heartbeatTimeoutMs: number): number {
  return Math.max(250, Math.floor(heartbeatTimeoutMs / 3));
}

export const bandwidthBytesPerSecond = (maxBandwidthMb: number | null) =>
  maxBandwidthMb === null ? 0 : maxBandwidthMb * 1024 * 1024;

export interface MigrationProgress {
  status: MigrationStatus['status'];
  transferredBytes: number;
  remainingBytes: number;
  totalBytes: number;
  dirtyRateBytesPerSecond: number;
  passes: number;
  mbps: number;
  expectedDowntimeMs: number | null;
  downtimeMs: number | null;
  cpuThrottlePercentage: number | null;
  percent: number;
  /** Estimated seconds to finish, or null when the copy is not gaining on the dirty rate. */
  etaSeconds: number | null;
  sampledAt: number;
}

/**
 * Progress as the operator sees it. ETA = remaining / (link rate - dirty rate): when the guest dirties
 * memory as fast as the link carries it, there is no finite estimate and we say so rather than guess.
 */
export function progressOf(status: MigrationStatus, sampledAt: number): MigrationProgress {
  const dirtyRate = status.dirtyPagesRate * (status.pageSize || 4096);
  const linkRate = (status.mbps * 1_000_000) / 8;
  const gain = linkRate - (status.status === 'postcopy-active' ? 0 : dirtyRate);
  const done = status.status === 'completed';
  const percent = done
    ? 100
    : status.totalBytes > 0
      ? Math.min(
          99,
          Math.max(0, Math.round(((status.totalBytes - status.remainingBytes) / status.totalBytes) * 100)),
        )
      : 0;
  return {
    status: status.status,
    transferredBytes: status.transferredBytes,
    remainingBytes: status.remainingBytes,
    totalBytes: status.totalBytes,
    dirtyRateBytesPerSecond: Math.round(dirtyRate),
    passes: status.dirtySyncCount,
    mbps: status.mbps,
    expectedDowntimeMs: status.expectedDowntimeMs,
    downtimeMs: status.downtimeMs,
    cpuThrottlePercentage: status.cpuThrottlePercentage,
    percent,
    etaSeconds: done ? 0 : gain > 0 && linkRate > 0 ? Math.ceil(status.remainingBytes / gain) : null,
    sampledAt,
  };
}

export const terminalMigrationStatuses: ReadonlySet<MigrationStatus['status']> = new Set([
  'completed',
  'failed',
  'cancelled',
]);
