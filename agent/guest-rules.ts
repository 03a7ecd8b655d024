import type {
  CleanupRequest,
  GuestRunState,
  GuestSpec,
  MigrationStatus,
  MigrationStatusName,
  PrepareIncomingRequest,
  StartMigrationRequest,
} from '../domain/agent-contract.ts';
import { AgentFailure, conflict, notImplemented } from './errors.ts';

/**
 * Decisions shared by both drivers, as pure functions: whether a request is new work, a retry of
 * work already done, or a conflict. The drivers only carry them out.
 */

/** What the agent wants a guest to be; persisted so that a restarted agent can reconcile. */
export type DesiredState = 'stopped' | 'running' | 'paused' | 'incoming';

export interface MigrationRecord {
  migrationId: string;
  role: 'source' | 'destination';
  uri: string;
  postCopy: boolean;
  nbdUri: string | null;
  /** The last status seen once the migration ended, so it outlives the QEMU process. */
  final: MigrationStatus | null;
}

export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

export function sameSpec(a: GuestSpec, b: GuestSpec): boolean {
  return canonicalJson(a) === canonicalJson(b);
}

/** PUT: a new guest is created, the same spec again is a no-op, another spec is a 409. */
export function decideDefine(existing: GuestSpec | null, requested: GuestSpec): 'create' | 'unchanged' {
  if (existing === null) return 'create';
  if (sameSpec(existing, requested)) return 'unchanged';
  throw conflict(
    'spec_conflict',
    `guest '${requested.id}' already exists here with a different spec; destroy it first or PUT the same spec`,
    'spec',
  );
}

export const activeMigrationStatuses: readonly MigrationStatusName[] = [
  'setup',
  'active',
  'postcopy-active',
  'cancelling',
];

export function isMigrationActive(status: MigrationStatusName): boolean {
  return activeMigrationStatuses.includes(status);
}

export function isMigrationFinished(status: MigrationStatusName): boolean {
  return status === 'completed' || status === 'failed' || status === 'cancelled';
}

/**
 * Block migration of local disks and TLS come in a later issue; until then they are refused with a
 * 501 rather than faked. Where they plug in (qemu driver): prepareIncoming exports the new local
 * disks over NBD (nbd-server-start + nbd-server-add, writable) and returns the export as nbdUri;
 * startMigration mirrors them there (blockdev-mirror, wait for BLOCK_JOB_READY) before `migrate`,
 * and TLS sets tls-creds (tls-creds-x509 objects from the setup's certificates) on both ends.
 */
export function assertMigrationSupported(spec: GuestSpec, tls: boolean): void {
  const local = spec.disks.filter((disk) => disk.storage === 'local');
  if (local.length > 0) {
    throw notImplemented(
      'block_migration_not_implemented',
      `live migration of local disks (${local.map((d) => d.id).join(', ')}) needs NBD block migration, not implemented yet`,
      'spec.disks',
    );
  }
  if (tls) throw notImplemented('tls_not_implemented', 'TLS migration is not implemented yet', 'tls');
}

export interface ExistingGuest {
  spec: GuestSpec;
  migration: MigrationRecord | null;
  /** Whether the guest's process (or model) is still there to receive or run. */
  alive: boolean;
}

/**
 * prepare-incoming: new work when the guest is unknown here; a retry of the same migration returns
 * the earlier result while the incoming guest is still alive (or already running after completion);
 * anything else is a conflict the caller must clean up first.
 */
export function decidePrepareIncoming(
  existing: ExistingGuest | null,
  request: PrepareIncomingRequest,
): 'prepare' | 'existing' | 'restart' {
  if (existing === null) return 'prepare';
  const record = existing.migration;
  if (record === null || record.role !== 'destination' || record.migrationId !== request.migrationId) {
    throw conflict(
      'guest_exists',
      `guest '${request.spec.id}' already exists on this host outside migration '${request.migrationId}'`,
      'migrationId',
    );
  }
  if (!sameSpec(existing.spec, request.spec)) {
    throw conflict(
      'spec_conflict',
      `migration '${request.migrationId}' was prepared with another spec`,
      'spec',
    );
  }
  if (record.postCopy !== request.postCopy) {
    throw conflict(
      'postcopy_conflict',
      `migration '${request.migrationId}' was prepared with postCopy=${record.postCopy}`,
      'postCopy',
    );
  }
  return existing.alive ? 'existing' : 'restart';
}

/**
 * start-migration on the source: the same migrationId again returns the current status; a new one
 * is allowed only when no other migration of this guest is still in flight.
 */
export function decideStartMigration(
  current: { record: MigrationRecord | null; status: MigrationStatusName },
  runState: GuestRunState,
  request: StartMigrationRequest,
): 'start' | 'current' {
  const { record } = current;
  if (record !== null && record.migrationId === request.migrationId) {
    if (record.role !== 'source') {
      throw conflict(
        'wrong_role',
        `migration '${request.migrationId}' is incoming on this host`,
        'migrationId',
      );
    }
    return 'current';
  }
  if (record !== null && record.role === 'source' && current.status === 'completed') {
    throw conflict(
      'already_migrated',
      `guest already moved away under migration '${record.migrationId}'`,
      'migrationId',
    );
  }
  if (record !== null && isMigrationActive(current.status)) {
    throw conflict(
      'migration_in_progress',
      `guest is already migrating under migration '${record.migrationId}' (${current.status})`,
      'migrationId',
    );
  }
  if (runState !== 'running' && runState !== 'paused') {
    throw conflict('guest_not_running', `guest is ${runState}; only a running or paused guest can migrate`);
  }
  return 'start';
}

/**
 * cleanup: the source is cleaned only after its migration completed (else it holds the only copy of
 * the guest); the destination is destroyed whatever its state (rollback). Unknown guest: nothing.
 */
export function decideCleanup(
  current: { record: MigrationRecord | null; status: MigrationStatusName } | null,
  request: CleanupRequest,
): 'nothing' | 'destroy' {
  if (current === null) return 'nothing';
  const { record } = current;
  if (record === null || record.migrationId !== request.migrationId || record.role !== request.role) {
    throw conflict(
      'migration_mismatch',
      `this host holds the guest outside ${request.role} role of migration '${request.migrationId}'`,
      'migrationId',
    );
  }
  if (request.role === 'source' && current.status !== 'completed') {
    throw conflict(
      'migration_not_completed',
      `source cleanup needs a completed migration; '${request.migrationId}' is ${current.status}`,
    );
  }
  return 'destroy';
}

/** The status of a guest that has not migrated (yet), as QEMU's empty query-migrate. */
export function noMigrationStatus(migrationId: string | null = null): MigrationStatus {
  return {
    migrationId,
    status: 'none',
    transferredBytes: 0,
    remainingBytes: 0,
    totalBytes: 0,
    dirtyPagesRate: 0,
    pageSize: 4096,
    dirtySyncCount: 0,
    mbps: 0,
    expectedDowntimeMs: null,
    downtimeMs: null,
    totalTimeMs: null,
    cpuThrottlePercentage: null,
    errorDesc: null,
  };
}

/** QEMU URIs put IPv6 literals in brackets. */
export function hostPort(host: string, port: number): string {
  return host.includes(':') && !host.startsWith('[') ? `[${host}]:${port}` : `${host}:${port}`;
}

const SAFE_NAME = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;

/** Guest and disk ids become file names: refuse anything that could escape its directory. */
export function assertSafeName(value: string, field: string): void {
  if (!SAFE_NAME.test(value)) {
    throw new AgentFailure(
      400,
      'invalid_id',
      `${field}: expected 1-128 characters of letters, digits, '.', '_', ':' or '-', starting with a letter or digit; got '${value}'`,
      field,
    );
  }
}

export function assertSafeSpec(spec: GuestSpec): void {
  assertSafeName(spec.id, 'id');
  spec.disks.forEach((disk, index) => assertSafeName(disk.id, `disks.${index}.id`));
  const seen = new Set<string>();
  spec.disks.forEach((disk, index) => {
    if (seen.has(disk.id))
      throw new AgentFailure(
        400,
        'duplicate_disk',
        `disks.${index}.id: '${disk.id}' appears twice`,
        `disks.${index}.id`,
      );
    seen.add(disk.id);
  });
}
