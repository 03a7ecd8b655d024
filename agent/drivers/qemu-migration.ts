import {
  type GuestRunState,
  type MigrationParameters,
  type MigrationStatus,
  type MigrationStatusName,
  migrationStatuses,
} from '../../domain/agent-contract.ts';
import type { DesiredState } from '../guest-rules.ts';

/** The parts of QMP query-migrate we read (QEMU 7.2). */
export interface QueryMigrate {
  status?: string;
  ram?: {
    transferred?: number;
    remaining?: number;
    total?: number;
    'dirty-pages-rate'?: number;
    'page-size'?: number;
    'dirty-sync-count'?: number;
    mbps?: number;
  };
  'expected-downtime'?: number;
  downtime?: number;
  'total-time'?: number;
  'cpu-throttle-percentage'?: number;
  'error-desc'?: string;
  'socket-address'?: { type?: string; host?: string; port?: string | number }[];
}

/** QEMU statuses outside the contract's list, mapped to the nearest one. */
const STATUS_ALIASES: Record<string, MigrationStatusName> = {
  'pre-switchover': 'active',
  device: 'active',
  wait_unplug: 'active',
  'postcopy-paused': 'postcopy-active',
  'postcopy-recover': 'postcopy-active',
  colo: 'active',
};

export function normaliseStatusName(status: string | undefined): MigrationStatusName {
  if (status === undefined) return 'none';
  if ((migrationStatuses as readonly string[]).includes(status)) return status as MigrationStatusName;
  return STATUS_ALIASES[status] ?? 'active';
}

/**
 * Whether an outgoing migration's `query-migrate` caught QEMU between its `completed` and its figures: QEMU sets
 * the state (and sends the MIGRATION event) in `migration_completion()` and fills in `total-time` and `downtime`
 * only afterwards (`migration_calculate_complete()`, migration/migration.c), so a read in between shows 0 or
 * nothing for both. A completed migration's total time is never 0. Read again: the figures follow within
 * milliseconds, and a final status is recorded once.
 */
export function completionFiguresPending(info: QueryMigrate): boolean {
  return info.status === 'completed' && !((info['total-time'] ?? 0) > 0);
}

export function normaliseQueryMigrate(info: QueryMigrate, migrationId: string | null): MigrationStatus {
  const ram = info.ram ?? {};
  return {
    migrationId,
    status: normaliseStatusName(info.status),
    transferredBytes: ram.transferred ?? 0,
    remainingBytes: ram.remaining ?? 0,
    totalBytes: ram.total ?? 0,
    dirtyPagesRate: ram['dirty-pages-rate'] ?? 0,
    pageSize: ram['page-size'] ?? 4096,
    dirtySyncCount: ram['dirty-sync-count'] ?? 0,
    mbps: ram.mbps ?? 0,
    expectedDowntimeMs: info['expected-downtime'] ?? null,
    downtimeMs: info.downtime ?? null,
    totalTimeMs: info['total-time'] ?? null,
    cpuThrottlePercentage: info['cpu-throttle-percentage'] ?? null,
    errorDesc: info['error-desc'] ?? null,
  };
}

/** The port QEMU bound for `migrate-incoming tcp:<host>:0`. */
export function incomingPort(info: QueryMigrate): number | null {
  const port = Number(info['socket-address']?.[0]?.port);
  return Number.isInteger(port) && port > 0 ? port : null;
}

const PAUSED_STATES = new Set([
  'paused',
  'postmigrate',
  'finish-migrate',
  'prelaunch',
  'suspended',
  'save-vm',
  'restore-vm',
  'debug',
  'watchdog',
  'colo',
]);

/** The contract's run state from what the agent wants and what QEMU says (query-status). */
export function runStateOf(
  desired: DesiredState,
  everStarted: boolean,
  processAlive: boolean,
  hypervisorStatus: string | null,
): GuestRunState {
  if (!processAlive) {
    if (desired === 'running' || desired === 'incoming') return 'crashed';
    return everStarted ? 'stopped' : 'defined';
  }
  if (hypervisorStatus === null) {
    return desired === 'incoming' ? 'incoming' : desired === 'paused' ? 'paused' : 'running';
  }
  if (hypervisorStatus === 'running') return 'running';
  if (hypervisorStatus === 'inmigrate') return 'incoming';
  if (PAUSED_STATES.has(hypervisorStatus)) return 'paused';
  return 'crashed';
}

/**
 * The migrate-set-parameters arguments of a bandwidth cap, in bytes/s (0 = no limit, in the contract as in
 * QEMU). QEMU has a separate cap for post-copy, max-postcopy-bandwidth (default 0: unlimited), so a capped
 * migration that switched to post-copy would take the whole link: both are set together.
 */
export function bandwidthParameters(bytesPerSec: number): {
  'max-bandwidth': number;
  'max-postcopy-bandwidth': number;
} {
  return { 'max-bandwidth': bytesPerSec, 'max-postcopy-bandwidth': bytesPerSec };
}

/** The migrate-set-parameters arguments of a change during a migration (only the fields given). */
export function migrationParameterArgs(parameters: MigrationParameters): Record<string, number> {
  const args: Record<string, number> = {};
  if (parameters.downtimeLimitMs !== undefined) args['downtime-limit'] = parameters.downtimeLimitMs;
  if (parameters.maxBandwidthBytes !== undefined)
    Object.assign(args, bandwidthParameters(parameters.maxBandwidthBytes));
  if (parameters.cpuThrottleIncrement !== undefined)
    args['cpu-throttle-increment'] = parameters.cpuThrottleIncrement;
  if (parameters.cpuThrottleInitial !== undefined)
    args['cpu-throttle-initial'] = parameters.cpuThrottleInitial;
  if (parameters.maxCpuThrottle !== undefined) args['max-cpu-throttle'] = parameters.maxCpuThrottle;
  return args;
}
