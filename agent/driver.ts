import type {
  CleanupRequest,
  DiskCopyStatus,
  DiskExportRequest,
  DiskExportResult,
  DiskImportRequest,
  GuestSpec,
  GuestState,
  HostFacts,
  MigrationParameters,
  MigrationStatus,
  PrepareIncomingRequest,
  PrepareIncomingResult,
  ResumeRequest,
  StartMigrationRequest,
} from '../domain/agent-contract.ts';

/** What the agent knows about itself before asking the hypervisor anything. */
export interface AgentIdentity {
  hostId: string;
  name: string;
  /** Filled in once the HTTP server listens (the port may be ephemeral). */
  agentUrl: string;
  address: string;
  migrationAddress: string | null;
  networks: string[];
  sharedStoragePath: string;
}

export interface GuestUsage {
  id: string;
  /** Percent of the guest's own vCPUs. */
  cpuPercent: number;
  memoryBytes: number;
}

export interface HostUsage {
  /** Percent of the host's CPUs. */
  cpuPercent: number;
  memAvailableBytes: number;
  guests: GuestUsage[];
}

/**
 * One hypervisor behind the agent contract. Every method is idempotent: repeating a call with the
 * same arguments returns the current state without doing the work again. Failures that the caller
 * can act on are AgentFailure (404 unknown guest, 409 wrong state or conflicting request, 501 not yet
 * supported).
 * Admission control (409 insufficient_memory) applies to defineGuest, startGuest and prepareIncoming.
 */
export interface HypervisorDriver {
  readonly kind: 'qemu' | 'sim';

  /** Reattaches to guests left by a previous run of the agent, restarting those that should run. */
  init(): Promise<void>;
  facts(): Promise<HostFacts>;

  listGuests(): Promise<GuestState[]>;
  /** null when the guest is unknown on this host. */
  getGuest(id: string): Promise<GuestState | null>;
  /**
   * Whether the guest's own guest agent answers (QEMU Guest Agent Protocol guest-sync + guest-ping on its
   * org.qemu.guest_agent.0 channel) within timeoutMs: proof that the guest executes here, read-only.
   * false, never an error, when nothing answers (no channel, no agent in the guest, not running); 404 for
   * an unknown guest.
   */
  guestPing(id: string, timeoutMs: number): Promise<boolean>;
  defineGuest(spec: GuestSpec): Promise<GuestState>;
  startGuest(id: string): Promise<GuestState>;
  stopGuest(id: string): Promise<GuestState>;
  /**
   * QMP cont. A source whose guest went elsewhere is refused unless the request names the migration
   * and the status it expects (guest-rules decideResume).
   */
  resumeGuest(id: string, request?: ResumeRequest): Promise<GuestState>;
  /** QMP stop: a running guest pauses (its vCPUs stop; a migration in flight then converges). */
  pauseGuest(id: string): Promise<GuestState>;
  /** false when there was nothing to destroy. Shared disks are never deleted. */
  destroyGuest(id: string): Promise<boolean>;

  prepareIncoming(id: string, request: PrepareIncomingRequest): Promise<PrepareIncomingResult>;
  /**
   * What this host prepared for the guest as a destination (its migration record with role
   * destination), for a source agent to confirm; null when it has none. 404 for an unknown guest.
   */
  incomingMigration(
    id: string,
  ): Promise<Pick<PrepareIncomingResult, 'migrationId' | 'uri' | 'nbdUri'> | null>;
  /**
   * `confirm` is the route's check that the destination prepared this uri (agent/migration-target.ts):
   * the driver runs it once it decided to start a new migration, before it touches the hypervisor
   * (a retry of the current migration, or a conflict, never asks), and lets its refusal through.
   */
  startMigration(
    id: string,
    request: StartMigrationRequest,
    confirm: () => Promise<void>,
  ): Promise<MigrationStatus>;
  migrationStatus(id: string): Promise<MigrationStatus>;
  /** Calls the listener with the guest's id whenever the hypervisor reports a migration event (QEMU's MIGRATION). */
  onMigrationEvent?(listener: (guestId: string) => void): void;
  setMigrationParameters(id: string, parameters: MigrationParameters): Promise<MigrationStatus>;
  startPostCopy(id: string): Promise<MigrationStatus>;
  cancelMigration(id: string): Promise<MigrationStatus>;
  cleanup(id: string, request: CleanupRequest): Promise<{ cleaned: boolean }>;

  /**
   * Cold migration, source: exports a local disk of a guest with no QEMU here read-only (qemu:
   * qemu-nbd). An export that runs answers with its uri again.
   */
  exportDisk(id: string, diskId: string, request: DiskExportRequest): Promise<DiskExportResult>;
  /** The export of the disk that runs here, or null (also for an unknown guest). */
  diskExport(id: string, diskId: string): Promise<DiskExportResult | null>;
  /** false when the disk was not exported (or the guest is unknown). */
  stopDiskExport(id: string, diskId: string): Promise<{ stopped: boolean }>;
  /**
   * Cold migration, destination: copies an export into the guest's image of the local disk, in the
   * background (qemu: qemu-img convert into a temporary file, renamed over the image when complete).
   * The same nbdUri copying or completed answers with its status; a failed one or another uri starts again,
   * after `confirm` (the route's check that the source exports that disk there, as for startMigration).
   */
  importDisk(
    id: string,
    diskId: string,
    request: DiskImportRequest,
    confirm: () => Promise<void>,
  ): Promise<DiskCopyStatus>;
  /** 404 import_not_found when this agent run has no import of the disk. */
  diskImportStatus(id: string, diskId: string): Promise<DiskCopyStatus>;

  usage(): Promise<HostUsage>;
  /**
   * Stops every guest process but keeps the desired state on disk, so that the next start of the
   * agent brings the guests back. Used on SIGTERM.
   */
  shutdown(): Promise<void>;
  /**
   * Lets go of the guests without stopping them (agent upgrade, or a test standing in for an agent
   * crash): the next agent on the same dir reattaches to the running processes.
   */
  detach(): Promise<void>;
  /**
   * Self-fencing for a lost liveness lease: stop every guest at once before another host may restart
   * them (agent/start-agent.ts calls it when armed; domain/fencing.ts says when).
   */
  fence(reason: string): Promise<void>;
}
