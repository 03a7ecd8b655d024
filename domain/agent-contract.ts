import { z } from 'zod';

/**
 * The host-agent HTTP contract (JSON over HTTP, bearer token). Shared by the agent (server side),
 * activities and the API (client side), so both ends validate the same shapes.
 *
 * Routes (all under the agent's base URL, all idempotent):
 *   GET    /v1/facts                              -> HostFacts
 *   GET    /v1/guests                             -> { guests: GuestState[] }
 *   GET    /v1/guests/:id                         -> GuestState                  (404 if unknown)
 *   PUT    /v1/guests/:id            GuestSpec    -> GuestState  (create; same spec again = 200, other spec = 409)
 *   POST   /v1/guests/:id/start                   -> GuestState  (already running = no-op; a handed-over source = 409)
 *   POST   /v1/guests/:id/stop                    -> GuestState  (already stopped = no-op)
 *   POST   /v1/guests/:id/resume   ResumeRequest? -> GuestState  (QMP cont; running = no-op; see guest-rules decideResume)
 *   POST   /v1/guests/:id/pause                   -> GuestState  (QMP stop; paused = no-op)
 *   DELETE /v1/guests/:id                         -> { destroyed: boolean } (unknown = destroyed:false)
 *   POST   /v1/guests/:id/prepare-incoming  PrepareIncomingRequest -> PrepareIncomingResult
 *   GET    /v1/guests/:id/incoming                                 -> IncomingMigration (404 incoming_not_found)
 *   POST   /v1/guests/:id/migration         StartMigrationRequest  -> MigrationStatus (same migrationId again = no-op)
 *   GET    /v1/guests/:id/migration                                -> MigrationStatus
 *   POST   /v1/guests/:id/migration/parameters MigrationParameters -> MigrationStatus
 *   POST   /v1/guests/:id/migration/post-copy                      -> MigrationStatus
 *   POST   /v1/guests/:id/migration/cancel                         -> MigrationStatus
 *   POST   /v1/network/listen   { address, ttlMs? }  -> { address, port } (409 address_unavailable)
 *   POST   /v1/network/connect  { address, port }    -> { reachable, latencyMs, error }
 *   POST   /v1/guests/:id/cleanup           CleanupRequest         -> { cleaned: boolean }
 *   POST   /v1/guests/:id/disks/:diskId/export  DiskExportRequest? -> DiskExportResult   (cold migration, source)
 *   GET    /v1/guests/:id/disks/:diskId/export                     -> DiskExportResult   (404 export_not_found)
 *   DELETE /v1/guests/:id/disks/:diskId/export                     -> { stopped: boolean }
 *   POST   /v1/guests/:id/disks/:diskId/import  DiskImportRequest  -> DiskCopyStatus     (cold migration, destination)
 *   GET    /v1/guests/:id/disks/:diskId/import                     -> DiskCopyStatus     (404 import_not_found)
 * Errors: { error: { code: string, message: string, field?: string } } with a 4xx/5xx status.
 *
 * Peers: an agent sends a guest's memory, its disks or a probe only to a registered host (the API's
 * registration answer lists the cluster's hosts as `peers`): start-migration takes `uri` only as
 * `tcp:<host>:<port>` (sim: the destination agent's `sim+http://…` uri) and `nbdUri` as `nbd:<host>:<port>`,
 * import takes `nbdUri` only as `nbd://<host>:<port>/<export>` (sim: `sim+nbd://…`), network/connect
 * only a registered host's address. The host must be a registered host's address or migration address
 * (sim: its agent), and before it starts, the agent asks that host's agent (GET …/incoming, GET
 * …/export) whether it prepared this migration (export) of this guest on that port. Anything else is a
 * 400 naming the field: invalid_request (exec:, file:, unix:, fd:, rdma:, any other shape),
 * unknown_peer (not a registered host), not_prepared (the host did not confirm). A retry of the
 * migration or import in progress answers with its status without asking again. prepare-incoming's
 * and export's listenAddress must be an IP address or a host name (400 invalid_request otherwise).
 *
 * Admission: define, start and prepare-incoming answer 409 insufficient_memory when the host's
 * memory minus what the guests it holds or receives take (this guest excluded) is below the spec's.
 *
 * TLS (tls: true on both ends): the migration stream (and the NBD stream of a block migration, and
 * a cold copy's export) runs over TLS with each host's own x509 certificates (verify-peer on both
 * sides); the server end admits only the peer host named in the request (prepare-incoming
 * sourceHost, export destinationHost), the client end checks the server's name (start-migration
 * tlsHostname, import tlsHostname). A host without its certificates answers 409 tls_unavailable
 * naming the missing file (HostFacts.tlsReady tells beforehand).
 *
 * Block migration (a spec with `local` disks): prepare-incoming creates empty local disks on the
 * destination and exports them over NBD (PrepareIncomingResult.nbdUri); start-migration must then
 * carry that nbdUri. The source mirrors every local disk to the export (MigrationStatus status
 * 'setup', diskReady false, disk* byte counts) and starts the RAM copy only once every mirror is in
 * step ('active', diskReady true); at switch-over the mirrors are completed before the destination
 * runs. Cancel, failure or rollback leave the source running on its own disks.
 *
 * Disk copy (cold migration of a stopped guest's `local` disks): the source exports a disk read-only
 * over NBD (export -> nbdUri; qemu: qemu-nbd on the host's migration address, else its address), the
 * destination copies that export into its own image of the disk (import; qemu: qemu-img convert into
 * a temporary file renamed over the image once complete, so a half copy never looks whole), the caller
 * polls the import to 'completed', then stops the export. Both ends refuse (409 guest_not_stopped)
 * while a QEMU of the guest is there (running, paused, incoming, a migrated source): an exported image
 * must not change, an imported one must not be replaced under a guest. Other refusals: 404
 * guest_not_found, 404 disk_not_found (no such disk in the spec), 409 disk_not_local (a shared disk:
 * nothing to copy), 409 disk_exported / disk_import_in_progress (the disk is in the other copy role
 * here; start is refused the same way while a disk of the guest is exported or being imported), 400
 * invalid_request (an nbdUri this driver cannot read), 409 disk_image_missing (qemu: no image to
 * export), 409 export_conflict (a retried export naming another listenAddress), 500 export_failed
 * (qemu-nbd would not start). Idempotency: an export that runs answers with
 * its uri; DELETE of no export (or of an unknown guest) is { stopped: false }; an import from the same
 * nbdUri that is copying or completed answers with its status, a failed one or one from another
 * nbdUri starts again (a copy in progress is stopped first). Import status lives in the agent's
 * memory: after an agent restart GET answers 404 and the caller imports again. DELETE of the guest
 * stops its exports and imports.
 */

export const storageKinds = ['shared', 'local'] as const;
export const cacheModes = ['none', 'writeback', 'writethrough', 'directsync', 'unsafe'] as const;

export const diskSpecSchema = z.object({
  id: z.string().min(1),
  sizeMb: z.number().int().positive(),
  storage: z.enum(storageKinds),
  cache: z.enum(cacheModes).default('none'),
});
export type DiskSpec = z.infer<typeof diskSpecSchema>;

export const networkSpecSchema = z.object({
  name: z.string().min(1),
  mac: z.string().regex(/^([0-9a-f]{2}:){5}[0-9a-f]{2}$/i, 'a MAC address like 52:54:00:12:34:56'),
});
export type NetworkSpec = z.infer<typeof networkSpecSchema>;

export const guestSpecSchema = z.object({
  id: z.string().min(1),
  name: z.string().min(1),
  vcpus: z.number().int().min(1).max(64),
  memoryMb: z.number().int().min(64),
  disks: z.array(diskSpecSchema).default([]),
  networks: z.array(networkSpecSchema).default([]),
  /** Test-image workload: MiB/s of memory the guest rewrites (0 = idle). */
  dirtyRateMibs: z.number().min(0).default(0),
  /** Test-image workload: MiB of memory filled with non-zero data at boot. */
  fillMb: z.number().int().min(0).default(0),
  /**
   * Test-image workload: every few seconds write a known pattern to the first disk, read it back
   * past the page cache and print both checksums on the serial console (`DISK WROTE`/`DISK READ`).
   */
  diskTest: z.boolean().optional(),
});
export type GuestSpec = z.infer<typeof guestSpecSchema>;

export const guestRunStates = ['defined', 'running', 'paused', 'stopped', 'incoming', 'crashed'] as const;
export type GuestRunState = (typeof guestRunStates)[number];

export interface Heartbeat {
  /** Last counter the guest printed on its serial console. */
  counter: number;
  /** ISO time the agent read that counter. */
  at: string;
}

export interface GuestState {
  id: string;
  name: string;
  status: GuestRunState;
  spec: GuestSpec;
  /** QEMU's own run state (query-status), when a process exists. */
  hypervisorStatus: string | null;
  pid: number | null;
  heartbeat: Heartbeat | null;
}

export interface HostFacts {
  hostId: string;
  name: string;
  /** Base URL of this agent, e.g. http://127.0.0.1:9101 */
  agentUrl: string;
  /** Management address of the host. */
  address: string;
  /** Address on the dedicated migration network, if the host has one. */
  migrationAddress: string | null;
  driver: 'qemu' | 'sim';
  cpuModel: string;
  microcode: string;
  kernel: string;
  qemuVersion: string;
  cpus: number;
  memoryMb: number;
  freeMemoryMb: number;
  networks: string[];
  sharedStoragePath: string;
  /** Whether the host has the x509 certificates for TLS migration (qemu: all five files in its TLS dir). */
  tlsReady?: boolean;
  /**
   * Speed of the link migrations leave this host on, in megabits per second (qemu: the interface that carries
   * the migration address, or AGENT_MIGRATION_LINK_MBPS; sim: its modelled link). Absent when unknown
   * (loopback, a virtual interface without a speed): auto bandwidth then falls back to the cluster cap.
   */
  migrationLinkMbps?: number;
}

export const prepareIncomingRequestSchema = z.object({
  migrationId: z.string().min(1),
  spec: guestSpecSchema,
  /**
   * Address the destination listens on for the migration stream. Absent: the destination's QEMU is started
   * (`-incoming defer`) and set up but listens nowhere yet, so that it can start while the migration waits for
   * its slot and its network; the same migration prepared again with an address then makes it listen. Until
   * it listens the result's `uri` is empty, and no source can be confirmed against it.
   */
  listenAddress: z.string().min(1).optional(),
  tls: z.boolean().default(false),
  postCopy: z.boolean().default(false),
  /**
   * The source host's name. With tls, the destination admits only the certificate whose subject DN is
   * that host's (QEMU tls-authz), for the migration stream and the NBD export of a block migration;
   * without it any certificate of the CA is admitted. Optional: workflows started before it existed.
   */
  sourceHost: z.string().min(1).max(253).optional(),
});
export type PrepareIncomingRequest = z.infer<typeof prepareIncomingRequestSchema>;

export interface PrepareIncomingResult {
  migrationId: string;
  /** URI the source passes to QMP migrate, e.g. tcp:127.0.0.1:49152; empty while it does not listen yet. */
  uri: string;
  /** NBD export URI for block migration of local disks, if any. */
  nbdUri: string | null;
}

/**
 * What a destination prepared for a guest (GET /v1/guests/:id/incoming): a source agent confirms the
 * uri and nbdUri it was given against it before it starts. No secret in it.
 */
export interface IncomingMigration {
  migrationId: string;
  /** The uri prepare-incoming returned. */
  uri: string;
  /** Its port (sim: the destination agent's). */
  port: number | null;
  nbdUri: string | null;
  nbdPort: number | null;
}

/** QEMU's throttle percentages (cpu-throttle-initial, cpu-throttle-increment, max-cpu-throttle) are 1-99. */
const throttlePercent = z.number().int().min(1).max(99);

export const startMigrationRequestSchema = z.object({
  migrationId: z.string().min(1),
  uri: z.string().min(1),
  downtimeLimitMs: z.number().int().min(1).default(300),
  /** Bytes per second; 0 = unlimited. Caps the RAM copy and, separately, each disk mirror. */
  maxBandwidthBytes: z.number().int().min(0).default(0),
  autoConverge: z.boolean().default(false),
  postCopy: z.boolean().default(false),
  tls: z.boolean().default(false),
  /** The destination's PrepareIncomingResult.nbdUri; required when the guest has local disks. */
  nbdUri: z.string().min(1).optional(),
  /** Name the destination's certificate must carry; default: the host of `uri`. */
  tlsHostname: z.string().min(1).optional(),
  /** Auto-converge: first throttle step (QEMU cpu-throttle-initial, default 20). */
  cpuThrottleInitial: throttlePercent.optional(),
  /** Auto-converge: each further step (QEMU cpu-throttle-increment, default 10). */
  cpuThrottleIncrement: throttlePercent.optional(),
  /** Auto-converge: ceiling (QEMU max-cpu-throttle, default 99). */
  maxCpuThrottle: throttlePercent.optional(),
  /** QEMU's xbzrle capability: send deltas of re-sent pages. */
  xbzrle: z.boolean().optional(),
});
export type StartMigrationRequest = z.infer<typeof startMigrationRequestSchema>;

export const migrationParametersSchema = z.object({
  downtimeLimitMs: z.number().int().min(1).optional(),
  maxBandwidthBytes: z.number().int().min(0).optional(),
  cpuThrottleIncrement: z.number().int().min(1).max(100).optional(),
  cpuThrottleInitial: throttlePercent.optional(),
  maxCpuThrottle: throttlePercent.optional(),
});
export type MigrationParameters = z.infer<typeof migrationParametersSchema>;

export const migrationStatuses = [
  'none',
  'setup',
  'active',
  'postcopy-active',
  'completed',
  'failed',
  'cancelling',
  'cancelled',
] as const;
export type MigrationStatusName = (typeof migrationStatuses)[number];

/** QMP query-migrate, normalised: byte counts and rates as numbers, absent fields as null. */
export interface MigrationStatus {
  migrationId: string | null;
  status: MigrationStatusName;
  transferredBytes: number;
  remainingBytes: number;
  totalBytes: number;
  dirtyPagesRate: number;
  pageSize: number;
  dirtySyncCount: number;
  mbps: number;
  expectedDowntimeMs: number | null;
  downtimeMs: number | null;
  totalTimeMs: number | null;
  cpuThrottlePercentage: number | null;
  errorDesc: string | null;
  /** Epoch ms at which the source agent took the start request; null before (and on a destination). */
  setupAt?: number | null;
  /**
   * Epoch ms at which the source agent issued QMP `migrate` (block migration: the first disk
   * mirror); null before (and on a destination).
   */
  startedAt?: number | null;
  /** Whether this migration runs over TLS. */
  tls?: boolean;
  /** Block migration: bytes the disk mirrors copied (QEMU job offsets); 0 without local disks. */
  diskTransferredBytes?: number;
  /** Block migration: what the mirrors have to copy in all (job lengths, which grow with rewrites). */
  diskTotalBytes?: number;
  /** Block migration: diskTotalBytes - diskTransferredBytes. */
  diskRemainingBytes?: number;
  /**
   * false while local disks are being mirrored and not yet in step (status 'setup'); true once the
   * RAM copy may run (every mirror READY, or no local disks).
   */
  diskReady?: boolean;
  /**
   * Whether post-copy ever began in this migration (kept once the migration ended, and across agent
   * restarts). On a source its memory is then stale for good: resume and start are refused.
   */
  postCopyStarted?: boolean;
}

export const cleanupRequestSchema = z.object({
  migrationId: z.string().min(1),
  /** 'source': after switch-over, stop the old QEMU and release ports/firewall/disks here. */
  role: z.enum(['source', 'destination']),
  /**
   * Destination only: the run state the caller saw. Without it a destination that runs or holds the
   * paused guest after switch-over is refused (409 guest_runs_here); with it, the agent destroys only
   * when its state is still this one (409 state_changed otherwise).
   */
  expectState: z.enum(guestRunStates).optional(),
});
export type CleanupRequest = z.infer<typeof cleanupRequestSchema>;

/**
 * resume (QMP cont), with compare-and-swap: a migrationId other than the guest's migration here is a
 * 409 migration_mismatch, an expectMigrationStatus other than its status a 409 migration_state_changed.
 * A source must not run while the guest runs elsewhere: once post-copy began, never again (409
 * postcopy_started, whatever the request: its memory is stale); after a completed migration only when
 * the call names that migration and expectMigrationStatus 'completed' (409 source_migrated otherwise),
 * by which the caller states that it destroyed the destination. An empty body is {}.
 */
export const resumeRequestSchema = z
  .object({
    migrationId: z.string().min(1).optional(),
    /** The migration status the caller saw; the agent refuses (409 migration_state_changed) when it differs. */
    expectMigrationStatus: z.enum(migrationStatuses).optional(),
  })
  .default({});
export type ResumeRequest = z.infer<typeof resumeRequestSchema>;

/** Source side of a disk copy; an empty body is {}. */
export const diskExportRequestSchema = z
  .object({
    /**
     * Address the export listens on; default: the host's migration address, else its address (as
     * HostFacts say). A retried export that names another address than the running one is a 409
     * export_conflict.
     */
    listenAddress: z.string().min(1).optional(),
    /** Serve the export over TLS with this host's certificate (verify-peer: the importer shows its own). */
    tls: z.boolean().optional(),
    /** With tls: the destination host's name; only its certificate is admitted (QEMU tls-authz). */
    destinationHost: z.string().min(1).max(253).optional(),
  })
  .default({});
export type DiskExportRequest = z.infer<typeof diskExportRequestSchema>;

export interface DiskExportResult {
  /** Where the destination reads the disk from: qemu `nbd://<host>:<port>/<diskId>`, sim `sim+nbd://…`. */
  nbdUri: string;
}

export const diskImportRequestSchema = z.object({
  /** The source's DiskExportResult.nbdUri. */
  nbdUri: z.string().min(1),
  /** Read the export over TLS (the export was made with tls). */
  tls: z.boolean().optional(),
  /** With tls: the name the source's certificate must carry; default the host of nbdUri. */
  tlsHostname: z.string().min(1).max(253).optional(),
});
export type DiskImportRequest = z.infer<typeof diskImportRequestSchema>;

/**
 * POST /v1/guests/:id/guest-ping: does the guest's own guest agent answer (QEMU Guest Agent Protocol
 * guest-sync + guest-ping on its org.qemu.guest_agent.0 channel)? Asked for, never part of a GET.
 * An empty body is {}.
 */
/** How long a guest agent has to answer one guest-ping: one that answers does so in milliseconds; this is for a busy (TCG) guest. */
export const GUEST_PING_TIMEOUT_MS = 1000;

export const guestPingRequestSchema = z
  .object({
    /** How long the guest agent has to answer (default GUEST_PING_TIMEOUT_MS). */
    timeoutMs: z.number().int().min(1).max(10_000).default(GUEST_PING_TIMEOUT_MS),
  })
  .default({ timeoutMs: GUEST_PING_TIMEOUT_MS });
export type GuestPingRequest = z.infer<typeof guestPingRequestSchema>;

export interface GuestPingResult {
  /** false: nothing answered in time (no channel, no agent in the guest, a guest that does not run). */
  answered: boolean;
  /** How long the agent took to find out. */
  ms: number;
}

export const diskCopyStatuses = ['copying', 'completed', 'failed'] as const;
export type DiskCopyStatusName = (typeof diskCopyStatuses)[number];

/** The destination's copy of one local disk (import). */
export interface DiskCopyStatus {
  status: DiskCopyStatusName;
  /** Bytes of the disk's virtual size gone through so far (empty clusters count, unsent). */
  copiedBytes: number;
  /** The disk's virtual size. */
  totalBytes: number;
  /** Why the copy failed; null otherwise. */
  error: string | null;
  /** The export this copy reads. */
  nbdUri?: string;
  /** Epoch ms at which this copy started, and at which it ended (null while copying). */
  startedAt?: number;
  finishedAt?: number | null;
}

export interface AgentError {
  error: { code: string; message: string; field?: string };
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
