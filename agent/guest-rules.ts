import type {
  CleanupRequest,
  GuestRunState,
  GuestSpec,
  MigrationParameters,
  MigrationStatus,
  MigrationStatusName,
  PrepareIncomingRequest,
  StartMigrationRequest,
} from '../domain/agent-contract.ts';
import { AgentFailure, conflict } from './errors.ts';

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
  /** Whether the stream runs over TLS (absent in records of older agents: false). */
  tls?: boolean;
  /** Source: epoch ms at which the start request was taken. */
  setupAt?: number | null;
  /** Source: epoch ms at which QMP `migrate` (block migration: the first mirror) was issued. */
  startedAt?: number | null;
  /** Source of a block migration: how far the disk mirrors got. */
  block?: BlockMigrationRecord | null;
}

/**
 * The source side of a block migration, persisted so that a restarted agent carries on:
 * 'mirroring' (mirrors running, RAM copy not started) -> 'migrating' (every mirror READY, QMP migrate
 * issued) -> 'switched' (at pre-switchover the mirrors were completed and the migration continued).
 */
export interface BlockMigrationRecord {
  /** Local disk ids, mirrored to the NBD exports of the same names. */
  disks: string[];
  phase: 'mirroring' | 'migrating' | 'switched';
  /** What the mirrors had copied when they were completed (for the status after switch-over). */
  copiedBytes: number | null;
  /** Why the mirrors failed, once they did. */
  error: string | null;
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

export function localDisks(spec: GuestSpec): GuestSpec['disks'] {
  return spec.disks.filter((disk) => disk.storage === 'local');
}

export interface NbdAddress {
  host: string;
  port: number;
}

/** `nbd:<host>:<port>` (IPv6 hosts in brackets), as prepare-incoming returns it; null if malformed. */
export function parseNbdUri(uri: string): NbdAddress | null {
  const match = /^nbd:(\[[0-9A-Fa-f:.]+\]|[^:[\]/]+):(\d{1,5})$/.exec(uri);
  if (match === null) return null;
  const port = Number(match[2]);
  if (port < 1 || port > 65535) return null;
  return { host: match[1]!.replace(/^\[|\]$/g, ''), port };
}

export function nbdUri(host: string, port: number): string {
  return `nbd:${hostPort(host, port)}`;
}

/** The host of a `tcp:<host>:<port>` migration uri (no brackets), or null for other transports. */
export function tcpUriHost(uri: string): string | null {
  const match = /^tcp:(\[[^\]]+\]|[^:]+):\d+$/.exec(uri);
  return match === null ? null : match[1]!.replace(/^\[|\]$/g, '');
}

/**
 * What start-migration needs beyond its schema: a guest with local disks migrates them over NBD, so
 * the request must carry the destination's nbdUri. Returns the parsed export address (null when the
 * guest has no local disks; an nbdUri sent anyway is ignored).
 */
export function blockTarget(spec: GuestSpec, request: StartMigrationRequest): NbdAddress | null {
  const local = localDisks(spec);
  if (local.length === 0) return null;
  if (request.nbdUri === undefined) {
    throw new AgentFailure(
      400,
      'nbd_uri_required',
      `nbdUri: the guest has local disks (${local.map((d) => d.id).join(', ')}); pass the nbdUri the destination's prepare-incoming returned`,
      'nbdUri',
    );
  }
  const address = parseNbdUri(request.nbdUri);
  if (address === null) {
    throw new AgentFailure(
      400,
      'invalid_request',
      `nbdUri: expected nbd:<host>:<port> as prepare-incoming returns it, got '${request.nbdUri}'`,
      'nbdUri',
    );
  }
  return address;
}

/** QEMU refuses throttle steps of 100 % (the contract let cpuThrottleIncrement reach 100 before). */
export function assertMigrationParameters(parameters: MigrationParameters): void {
  if (parameters.cpuThrottleIncrement !== undefined && parameters.cpuThrottleIncrement > 99) {
    throw new AgentFailure(
      400,
      'invalid_request',
      `cpuThrottleIncrement: expected at most 99 (QEMU's limit), got ${parameters.cpuThrottleIncrement}`,
      'cpuThrottleIncrement',
    );
  }
}

/** A guest that holds or is about to take host memory, for admission control. */
export interface MemoryHolder {
  id: string;
  memoryMb: number;
}

/**
 * Admission control: refuses (409 insufficient_memory) a guest whose memory exceeds what the host has
 * left once the guests it holds or receives (this one excluded) are counted.
 */
export function assertMemoryAvailable(
  hostMemoryMb: number,
  holders: readonly MemoryHolder[],
  spec: GuestSpec,
  field = 'memoryMb',
): void {
  const others = holders.filter((holder) => holder.id !== spec.id);
  const heldMb = others.reduce((sum, holder) => sum + holder.memoryMb, 0);
  const freeMb = hostMemoryMb - heldMb;
  if (freeMb < spec.memoryMb) {
    throw conflict(
      'insufficient_memory',
      `guest '${spec.id}' needs ${spec.memoryMb} MiB but this host has ${Math.max(0, freeMb)} MiB free ` +
        `(${hostMemoryMb} MiB in all, ${heldMb} MiB held by ${others.length} other guest(s))`,
      field,
    );
  }
}

/** pause: a running guest is stopped, a paused one is left as it is, anything else is a conflict. */
export function decidePause(id: string, runState: GuestRunState): 'pause' | 'already' {
  if (runState === 'paused') return 'already';
  if (runState === 'running') return 'pause';
  throw conflict('guest_not_running', `guest '${id}' is ${runState}; only a running guest pauses`);
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
  if ((record.tls ?? false) !== request.tls) {
    throw conflict(
      'tls_conflict',
      `migration '${request.migrationId}' was prepared with tls=${record.tls ?? false}`,
      'tls',
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
    setupAt: null,
    startedAt: null,
    tls: false,
    diskTransferredBytes: 0,
    diskTotalBytes: 0,
    diskRemainingBytes: 0,
    diskReady: false,
  };
}

/** The disk figures of a migration without local disks: nothing to copy, the RAM copy may run. */
export const noDiskFigures = {
  diskTransferredBytes: 0,
  diskTotalBytes: 0,
  diskRemainingBytes: 0,
  diskReady: true,
} as const;

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
