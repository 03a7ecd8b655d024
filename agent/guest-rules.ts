import type {
  CleanupRequest,
  DiskCopyStatus,
  DiskSpec,
  GuestRunState,
  GuestSpec,
  MigrationParameters,
  MigrationStatus,
  MigrationStatusName,
  PrepareIncomingRequest,
  ResumeRequest,
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
  /**
   * Whether post-copy ever began in this migration (the agent asked for it, or saw postcopy-active).
   * On a source it is for good: the guest's memory here is stale and the guest must never run here
   * again (see decideResume). Absent in records of older agents: false.
   */
  postCopyStarted?: boolean;
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

/** What a driver knows of a guest's (last) migration when it decides on a call. */
export interface MigrationView {
  record: MigrationRecord | null;
  status: MigrationStatusName;
  /** Whether post-copy ever began in the record's migration (MigrationRecord.postCopyStarted). */
  postCopyStarted: boolean;
}

/**
 * start (boot from the disks): a running guest is a no-op; a paused or incoming one must be resumed or
 * received instead; a source that handed its guest over (completed, or post-copy began) must never
 * boot on its own, since the guest lives on the destination.
 */
export function decideStart(
  id: string,
  runState: GuestRunState,
  current: MigrationView,
): 'start' | 'already' {
  if (runState === 'running') return 'already';
  if (runState === 'paused' || runState === 'incoming') {
    throw conflict(
      'guest_not_startable',
      `guest '${id}' is ${runState}; use resume or wait for the migration`,
    );
  }
  const { record } = current;
  if (record?.role === 'source' && (current.postCopyStarted || current.status === 'postcopy-active')) {
    throw conflict(
      'postcopy_started',
      `guest '${id}' went to the destination with post-copy under migration '${record.migrationId}'; it must not boot here`,
    );
  }
  if (record?.role === 'source' && current.status === 'completed') {
    throw conflict(
      'source_migrated',
      `guest '${id}' moved away under migration '${record.migrationId}'; clean the source up or destroy it, it must not boot here`,
    );
  }
  return 'start';
}

/** stop: refused while a migration of the guest is in flight (cancel it first). */
export function decideStop(id: string, status: MigrationStatusName): 'stop' {
  if (isMigrationActive(status)) {
    throw conflict('migration_in_progress', `cannot stop guest '${id}' while its migration is ${status}`);
  }
  return 'stop';
}

/**
 * resume (QMP cont): a running guest is a no-op; only a paused one resumes. The caller may name the
 * migration and the status it saw (compare-and-swap): another migration is a 409 migration_mismatch,
 * another status a 409 migration_state_changed. A source must not run once the guest runs elsewhere:
 * after post-copy began never again (409 postcopy_started, no override: its memory is stale); after a
 * completed migration only when the call names that migration and 'completed' (409 source_migrated
 * otherwise), which states that the caller destroyed the destination (rollback).
 */
export function decideResume(
  id: string,
  runState: GuestRunState,
  current: MigrationView,
  request: ResumeRequest = {},
): 'resume' | 'already' {
  if (runState === 'running') return 'already';
  if (runState !== 'paused') {
    throw conflict('guest_not_paused', `guest '${id}' is ${runState}; only a paused guest resumes`);
  }
  const { record, status } = current;
  if (request.migrationId !== undefined && request.migrationId !== record?.migrationId) {
    throw conflict(
      'migration_mismatch',
      record === null
        ? `guest '${id}' has no migration here, not '${request.migrationId}'`
        : `guest '${id}' is in migration '${record.migrationId}' here, not '${request.migrationId}'`,
      'migrationId',
    );
  }
  if (request.expectMigrationStatus !== undefined && request.expectMigrationStatus !== status) {
    throw conflict(
      'migration_state_changed',
      `migration of guest '${id}': expected ${request.expectMigrationStatus}, QEMU reports ${status}`,
      'expectMigrationStatus',
    );
  }
  if (record?.role === 'source') {
    if (current.postCopyStarted || status === 'postcopy-active') {
      throw conflict(
        'postcopy_started',
        `guest '${id}' went to the destination with post-copy under migration '${record.migrationId}'; ` +
          'its memory here is stale and it never runs here again',
      );
    }
    if (
      status === 'completed' &&
      !(request.migrationId === record.migrationId && request.expectMigrationStatus === 'completed')
    ) {
      throw conflict(
        'source_migrated',
        `guest '${id}' moved away under migration '${record.migrationId}' (completed); to run it here again, ` +
          `destroy the destination, then resume with migrationId '${record.migrationId}' and expectMigrationStatus 'completed'`,
      );
    }
  }
  return 'resume';
}

/**
 * post-copy (source): 'current' when post-copy already runs or the migration ended (or is being
 * cancelled); 'switch' for an active migration started with postCopy whose disks are in step.
 */
export function decidePostCopy(
  id: string,
  current: { record: MigrationRecord | null; status: MigrationStatusName; mirroring: boolean },
): 'switch' | 'current' {
  const { record, status } = current;
  if (record?.role === 'source' && (status === 'postcopy-active' || isMigrationFinished(status))) {
    return 'current';
  }
  if (record?.role !== 'source' || !isMigrationActive(status)) {
    throw conflict('no_active_migration', `guest '${id}' has no outgoing migration in progress`);
  }
  if (!record.postCopy) {
    throw conflict(
      'postcopy_not_enabled',
      'post-copy was not enabled when this migration started',
      'postCopy',
    );
  }
  if (current.mirroring) {
    throw conflict(
      'disk_mirror_not_ready',
      'the local disks are still being mirrored; post-copy can start once the RAM copy runs (diskReady)',
    );
  }
  if (status === 'cancelling') return 'current';
  return 'switch';
}

/**
 * cancel (source): nothing to do ('current') unless an outgoing migration is in flight; refused
 * once post-copy runs (the guest runs on the destination).
 */
export function decideCancel(current: MigrationView): 'cancel' | 'current' {
  const { record, status } = current;
  if (record?.role !== 'source' || !isMigrationActive(status)) return 'current';
  if (status === 'postcopy-active' || current.postCopyStarted) {
    throw conflict(
      'postcopy_active',
      'a migration in post-copy cannot be cancelled: the guest runs on the destination',
    );
  }
  return 'cancel';
}

export interface ExistingGuest {
  spec: GuestSpec;
  migration: MigrationRecord | null;
  /** Whether the guest's process (or model) is still there to receive or run. */
  alive: boolean;
}

/**
 * prepare-incoming: new work when the guest is unknown here; a retry of the same migration returns
 * the earlier result while the incoming guest is still alive (or already running after completion),
 * and makes it listen when it was started without an address and one is given now; anything else is a
 * conflict the caller must clean up first.
 */
export function decidePrepareIncoming(
  existing: ExistingGuest | null,
  request: PrepareIncomingRequest,
): 'prepare' | 'existing' | 'restart' | 'listen' {
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
  if (!existing.alive) return 'restart';
  // Started ahead of its network (no listen address then): the address, once known, makes it listen.
  return record.uri === '' && request.listenAddress !== undefined ? 'listen' : 'existing';
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
 * the guest). The destination is destroyed while it is only receiving (incoming) or its QEMU is gone
 * (rollback); one that runs or holds the paused guest after switch-over may be the only copy, so it
 * is destroyed only when the call names the state it saw (expectState; 409 state_changed when it is
 * no longer that one), else 409 guest_runs_here. Unknown guest: nothing.
 */
export function decideCleanup(
  current: {
    record: MigrationRecord | null;
    status: MigrationStatusName;
    /** The guest's run state here (decides destination cleanups). */
    runState: GuestRunState;
  } | null,
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
  if (request.role === 'destination') {
    if (request.expectState !== undefined) {
      if (request.expectState !== current.runState) {
        throw conflict(
          'state_changed',
          `destination guest of migration '${request.migrationId}': expected ${request.expectState}, it is ${current.runState}`,
          'expectState',
        );
      }
      return 'destroy';
    }
    if (current.runState === 'running' || current.runState === 'paused') {
      throw conflict(
        'guest_runs_here',
        `the guest is ${current.runState} here after switch-over of migration '${request.migrationId}' ` +
          `(migration ${current.status}) and may be its only copy; to destroy it, pass expectState '${current.runState}'`,
        'expectState',
      );
    }
  }
  return 'destroy';
}

export { noMigrationStatus } from '../domain/agent-contract.ts';

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

/**
 * Disk copy (export on the source, import on the destination): the disk a call names must be one of
 * the guest's local disks (404 disk_not_found, 409 disk_not_local).
 */
export function localDiskOf(spec: GuestSpec, diskId: string): DiskSpec {
  const disk = spec.disks.find((d) => d.id === diskId);
  if (disk === undefined) {
    throw new AgentFailure(
      404,
      'disk_not_found',
      `guest '${spec.id}' has no disk '${diskId}' (it has ${spec.disks.map((d) => `'${d.id}'`).join(', ') || 'none'})`,
      'diskId',
    );
  }
  if (disk.storage !== 'local') {
    throw conflict(
      'disk_not_local',
      `disk '${diskId}' of guest '${spec.id}' is on ${disk.storage} storage: every host sees it, there is nothing to copy`,
      'diskId',
    );
  }
  return disk;
}

/**
 * A disk is copied only while no QEMU of the guest is there (running, paused, incoming, a migrated
 * source): an exported image must not change while it is read, an imported one must not be replaced
 * under a guest. `live` says whether the driver holds a process (or its model) for the guest.
 */
export function assertDiskQuiet(
  id: string,
  diskId: string,
  runState: GuestRunState,
  live: boolean,
  action: 'export' | 'import',
): void {
  if (!live) return;
  const why =
    action === 'export'
      ? 'the image must not change while it is copied'
      : 'its image cannot be replaced under a QEMU that uses it';
  throw conflict(
    'guest_not_stopped',
    `guest '${id}' is ${runState} here (a QEMU holds disk '${diskId}'): stop it before the ${action}; ${why}`,
  );
}

/** What a host is doing with a guest's disks, for the refusals of start, export and import. */
export interface DiskCopies {
  /** Disk ids exported here. */
  exported: readonly string[];
  /** Disk ids being imported here (status copying). */
  importing: readonly string[];
}

/** start: refused while a disk of the guest is exported (it would change under the copy) or being imported. */
export function assertNoDiskCopy(id: string, copies: DiskCopies): void {
  if (copies.exported.length > 0) {
    throw conflict(
      'disk_exported',
      `disk(s) ${copies.exported.map((d) => `'${d}'`).join(', ')} of guest '${id}' are exported for a copy; stop the export first`,
    );
  }
  if (copies.importing.length > 0) {
    throw conflict(
      'disk_import_in_progress',
      `disk(s) ${copies.importing.map((d) => `'${d}'`).join(', ')} of guest '${id}' are being copied here; wait for the import or destroy the guest`,
    );
  }
}

/** export: refused while the same disk is being imported here (its image is about to be replaced). */
export function assertNotImporting(id: string, diskId: string, copies: DiskCopies): void {
  if (copies.importing.includes(diskId)) {
    throw conflict(
      'disk_import_in_progress',
      `disk '${diskId}' of guest '${id}' is being copied into this host; it cannot be exported before the import ends`,
      'diskId',
    );
  }
}

/** import: refused while the same disk is exported from here (the copy would replace what is being read). */
export function assertNotExported(id: string, diskId: string, copies: DiskCopies): void {
  if (copies.exported.includes(diskId)) {
    throw conflict(
      'disk_exported',
      `disk '${diskId}' of guest '${id}' is exported from this host; stop the export before importing into it`,
      'diskId',
    );
  }
}

/**
 * export: an export that runs answers again with its uri ('current'), unless the request names another
 * listen address (409 export_conflict); none (or a dead one) is started.
 */
export function decideExport(
  running: { listenAddress: string } | null,
  listenAddress: string,
): 'current' | 'start' {
  if (running === null) return 'start';
  if (running.listenAddress !== listenAddress) {
    throw conflict(
      'export_conflict',
      `the disk is already exported on ${running.listenAddress}; stop that export to export it on ${listenAddress}`,
      'listenAddress',
    );
  }
  return 'current';
}

/**
 * import: the same nbdUri copying or completed answers with its status ('current'); a failed import, or
 * one from another nbdUri, starts again (the caller stops a copy in progress first).
 */
export function decideImport(
  current: Pick<DiskCopyStatus, 'status' | 'nbdUri'> | null,
  nbdUri: string,
): 'current' | 'start' {
  if (current === null || current.nbdUri !== nbdUri) return 'start';
  return current.status === 'failed' ? 'start' : 'current';
}

export function importNotFound(id: string, diskId: string): AgentFailure {
  return new AgentFailure(
    404,
    'import_not_found',
    `no import of disk '${diskId}' of guest '${id}' on this host (an agent restart forgets them: import again)`,
    'diskId',
  );
}
