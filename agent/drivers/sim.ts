import type {
  CleanupRequest,
  DiskCopyStatus,
  DiskExportRequest,
  DiskExportResult,
  DiskImportRequest,
  GuestRunState,
  GuestSpec,
  GuestState,
  HostFacts,
  MigrationParameters,
  MigrationStatus,
  PrepareIncomingRequest,
  PrepareIncomingResult,
  ResumeRequest,
  StartMigrationRequest,
} from '../../domain/agent-contract.ts';
import type { AgentIdentity, HostUsage, HypervisorDriver } from '../driver.ts';
import { AgentFailure, conflict, guestNotFound } from '../errors.ts';
import { MAX_LINK_MBPS } from '../facts.ts';
import {
  assertDiskQuiet,
  assertMemoryAvailable,
  assertMigrationParameters,
  assertNoDiskCopy,
  assertNotExported,
  assertNotImporting,
  blockTarget,
  decideCancel,
  decideCleanup,
  decideDefine,
  decidePause,
  decidePostCopy,
  decidePrepareIncoming,
  decideResume,
  decideStart,
  decideStartMigration,
  decideStop,
  decideExport,
  decideImport,
  type DesiredState,
  type DiskCopies,
  importNotFound,
  localDiskOf,
  localDisks,
  type MemoryHolder,
  type MigrationRecord,
  type MigrationView,
  nbdUri,
  noDiskFigures,
  noMigrationStatus,
} from '../guest-rules.ts';
import { errorMessage, type Logger } from '../log.ts';
import {
  heartbeatAtMs,
  heartbeatCounter,
  newClock,
  pauseClock,
  runClock,
  runningSeconds,
  type SimClock,
} from './sim-clock.ts';
import {
  advance,
  type SimMigrationParams,
  type SimMigrationState,
  type SimWorkload,
  startState,
  statusFigures,
  switchToPostCopy,
  THROTTLE_DEFAULTS,
  workloadOf,
} from './sim-model.ts';
import {
  parseSimUri,
  registerInProcessPeer,
  sendSimEvent,
  type SimEvent,
  type SimEventReceiver,
  type SimPeerAddress,
  simUri,
} from './sim-peer.ts';

const MIB = 1024 * 1024;

/** The host a sim agent pretends to be. */
export interface SimHostProfile {
  cpuModel: string;
  microcode: string;
  kernel: string;
  qemuVersion: string;
  cpus: number;
  memoryMb: number;
  /**
   * Migration link speed, used when a migration sets no bandwidth cap (pre-copy and post-copy alike), and
   * reported in the facts as migrationLinkMbps. Default 1.25 GB/s: a 10 Gbit/s link.
   */
  linkBytesPerSec: number;
  /** What facts report as tlsReady (the sim needs no certificates; TLS has no effect on the model). */
  tlsReady?: boolean;
}

export const defaultSimProfile: SimHostProfile = {
  cpuModel: 'Intel(R) Xeon(R) Gold 6248R CPU @ 3.00GHz',
  microcode: '0x5003604',
  kernel: '6.1.0-28-amd64',
  qemuVersion: '7.2.15',
  cpus: 48,
  memoryMb: 393_216,
  linkBytesPerSec: 1_250_000_000,
};

/** The modelled link as facts report it: whole megabits per second, left out when outside 1 Mbit/s..10 Tbit/s. */
export function simLinkFact(linkBytesPerSec: number): { migrationLinkMbps?: number } {
  const mbps = Math.round((linkBytesPerSec * 8) / 1e6);
  return mbps >= 1 && mbps <= MAX_LINK_MBPS ? { migrationLinkMbps: mbps } : {};
}

interface Outgoing {
  role: 'source';
  record: MigrationRecord;
  peer: SimPeerAddress | null;
  startedAtMs: number;
  /** Recorded only: the model has no xbzrle. */
  xbzrle: boolean;
  /** Set at the switch-over: the guest was paused then, so it arrives paused (as QEMU's global state). */
  sourcePaused: boolean | null;
  workload: SimWorkload;
  params: SimMigrationParams;
  state: SimMigrationState;
  /** Set when the migration ended other than by completing. */
  outcome: { status: 'failed' | 'cancelled'; errorDesc: string | null; atMs: number } | null;
  /** Events the destination still has to hear about, oldest first. */
  undelivered: SimEvent[];
  deliveryFailureLogged: boolean;
}

interface Incoming {
  role: 'destination';
  record: MigrationRecord;
  status: MigrationStatus;
}

/** A disk copy into this host, computed from elapsed time at the host's link speed (no timer). */
interface SimImport {
  nbdUri: string;
  startedAtMs: number;
  totalBytes: number;
  bytesPerSec: number;
  /** Set when the copy failed (fenced host). */
  failure: { error: string; atMs: number } | null;
}

interface SimGuest {
  spec: GuestSpec;
  desired: DesiredState;
  everStarted: boolean;
  crashed: boolean;
  /** What QEMU's query-status would say; null when there would be no process. */
  hypervisorStatus: string | null;
  clock: SimClock;
  migration: Outgoing | Incoming | null;
  /** Cold migration, source: exported local disks, by disk id. */
  diskExports: Map<string, { nbdUri: string; listenAddress: string }>;
  /** Cold migration, destination: copies into local disks, by disk id. */
  diskImports: Map<string, SimImport>;
}

export interface SimDriverOptions {
  identity: AgentIdentity;
  profile: SimHostProfile;
  log: Logger;
  /** What this agent presents to a destination agent it sends migration events to (peer-client.ts). */
  peerCredential: string;
  now?: () => number;
  /**
   * Guests defined and running from init() on, as if started through the API (a sim fleet's seeded guests:
   * whoever seeds them holds their inventory rows). Each must fit the host's memory as any start must.
   */
  seedGuests?: readonly GuestSpec[];
}

/**
 * The hypervisor as a model: no processes, no per-guest timers. Guest heartbeats and migration
 * progress are computed from elapsed time when someone looks; one driver-wide ticker runs only
 * while migrations are in flight, so that a destination hears of completion even if nobody polls
 * the source. One process can hold thousands of these hosts.
 */
export class SimDriver implements HypervisorDriver, SimEventReceiver {
  readonly kind = 'sim' as const;
  private readonly guests = new Map<string, SimGuest>();
  private readonly now: () => number;
  private ticker: NodeJS.Timeout | null = null;
  private readonly delivering = new Set<Outgoing>();
  private unregisterPeer: (() => void) | null = null;

  constructor(private readonly options: SimDriverOptions) {
    this.now = options.now ?? Date.now;
  }

  async init(): Promise<void> {
    this.unregisterPeer = registerInProcessPeer(this.options.identity.agentUrl, this);
    for (const spec of this.options.seedGuests ?? []) {
      await this.defineGuest(spec);
      await this.startGuest(spec.id);
    }
  }

  async facts(): Promise<HostFacts> {
    const { identity, profile } = this.options;
    const committedMb = [...this.guests.values()]
      .filter((g) => g.hypervisorStatus !== null)
      .reduce((sum, g) => sum + g.spec.memoryMb, 0);
    return {
      hostId: identity.hostId,
      name: identity.name,
      agentUrl: identity.agentUrl,
      address: identity.address,
      migrationAddress: identity.migrationAddress,
      driver: 'sim',
      cpuModel: profile.cpuModel,
      microcode: profile.microcode,
      kernel: profile.kernel,
      qemuVersion: profile.qemuVersion,
      cpus: profile.cpus,
      memoryMb: profile.memoryMb,
      freeMemoryMb: Math.max(0, profile.memoryMb - committedMb),
      networks: identity.networks,
      sharedStoragePath: identity.sharedStoragePath,
      tlsReady: profile.tlsReady ?? true,
      ...simLinkFact(profile.linkBytesPerSec),
    };
  }

  async listGuests(): Promise<GuestState[]> {
    return [...this.guests.keys()].map((id) => this.view(id));
  }

  async getGuest(id: string): Promise<GuestState | null> {
    return this.guests.has(id) ? this.view(id) : null;
  }

  /** The sim's guests all carry a guest agent: it answers while the guest runs. */
  async guestPing(id: string): Promise<boolean> {
    if (!this.guests.has(id)) throw guestNotFound(id);
    return this.view(id).status === 'running';
  }

  async defineGuest(spec: GuestSpec): Promise<GuestState> {
    const existing = this.guests.get(spec.id);
    if (decideDefine(existing?.spec ?? null, spec) === 'create') {
      assertMemoryAvailable(this.options.profile.memoryMb, this.memoryHolders(), spec);
      this.guests.set(spec.id, {
        spec,
        desired: 'stopped',
        everStarted: false,
        crashed: false,
        hypervisorStatus: null,
        clock: newClock,
        migration: null,
        diskExports: new Map(),
        diskImports: new Map(),
      });
    }
    return this.view(spec.id);
  }

  async startGuest(id: string): Promise<GuestState> {
    const guest = this.progress(id);
    if (decideStart(id, this.runState(guest), this.migrationView(guest)) === 'already') return this.view(id);
    assertNoDiskCopy(id, this.diskCopiesOf(guest));
    assertMemoryAvailable(this.options.profile.memoryMb, this.memoryHolders(), guest.spec);
    guest.clock = runClock(newClock, this.now());
    guest.hypervisorStatus = 'running';
    guest.desired = 'running';
    guest.everStarted = true;
    guest.crashed = false;
    guest.migration = null;
    return this.view(id);
  }

  async stopGuest(id: string): Promise<GuestState> {
    const guest = this.progress(id);
    decideStop(id, this.statusOf(guest).status);
    guest.clock = pauseClock(guest.clock, this.now());
    guest.hypervisorStatus = null;
    guest.desired = 'stopped';
    return this.view(id);
  }

  async resumeGuest(id: string, request: ResumeRequest = {}): Promise<GuestState> {
    const guest = this.progress(id);
    const current = this.migrationView(guest);
    if (decideResume(id, this.runState(guest), current, request) === 'already') return this.view(id);
    // Resuming a source after its migration completed is a rollback: the guest is back here.
    if (guest.migration?.role === 'source' && current.status === 'completed') guest.migration = null;
    guest.clock = runClock(guest.clock, this.now());
    guest.hypervisorStatus = 'running';
    guest.desired = 'running';
    // A migration in flight sees the guest dirty memory again.
    if (guest.migration?.role === 'source') {
      guest.migration.workload = {
        ...guest.migration.workload,
        dirtyBytesPerSec: workloadOf(guest.spec).dirtyBytesPerSec,
      };
    }
    return this.view(id);
  }

  async pauseGuest(id: string): Promise<GuestState> {
    const guest = this.progress(id);
    if (decidePause(id, this.runState(guest)) === 'already') return this.view(id);
    guest.clock = pauseClock(guest.clock, this.now());
    guest.hypervisorStatus = 'paused';
    guest.desired = 'paused';
    // A paused guest dirties nothing: a migration in flight converges from here on.
    if (guest.migration?.role === 'source') {
      guest.migration.workload = { ...guest.migration.workload, dirtyBytesPerSec: 0 };
    }
    return this.view(id);
  }

  async destroyGuest(id: string): Promise<boolean> {
    const guest = this.guests.get(id);
    if (guest === undefined) return false;
    if (guest.migration?.role === 'source' && guest.migration.outcome === null) {
      this.progress(id);
      if (guest.migration.state.phase !== 'completed')
        this.endOutgoing(guest, 'failed', 'source guest destroyed');
      this.deliver(guest.migration);
    }
    this.guests.delete(id);
    return true;
  }

  async prepareIncoming(id: string, request: PrepareIncomingRequest): Promise<PrepareIncomingResult> {
    if (request.spec.id !== id)
      throw new AgentFailure(400, 'id_mismatch', `spec.id must be '${id}'`, 'spec.id');
    const existing = this.guests.get(id);
    const decision = decidePrepareIncoming(
      existing === undefined
        ? null
        : { spec: existing.spec, migration: existing.migration?.record ?? null, alive: !existing.crashed },
      request,
    );
    if (decision === 'existing' && existing !== undefined) return resultOf(existing.migration!.record);
    // Shaped as the qemu driver's; nothing listens there (the disk copy is modelled at the source).
    const listening = (listenAddress: string | undefined) => ({
      uri: listenAddress === undefined ? '' : simUri(this.options.identity.agentUrl, request.migrationId, id),
      nbdUri:
        listenAddress !== undefined && localDisks(request.spec).length > 0
          ? nbdUri(listenAddress, SIM_NBD_PORT)
          : null,
    });
    if (decision === 'listen' && existing?.migration) {
      Object.assign(existing.migration.record, listening(request.listenAddress));
      return resultOf(existing.migration.record);
    }
    assertMemoryAvailable(this.options.profile.memoryMb, this.memoryHolders(), request.spec, 'spec.memoryMb');
    const record: MigrationRecord = {
      migrationId: request.migrationId,
      role: 'destination',
      ...listening(request.listenAddress),
      postCopy: request.postCopy,
      final: null,
      tls: request.tls,
    };
    this.guests.set(id, {
      spec: request.spec,
      desired: 'incoming',
      everStarted: true,
      crashed: false,
      hypervisorStatus: 'inmigrate',
      clock: newClock,
      migration: {
        role: 'destination',
        record,
        status: { ...noMigrationStatus(request.migrationId), status: 'setup' },
      },
      diskExports: new Map(),
      diskImports: new Map(),
    });
    return resultOf(record);
  }

  async incomingMigration(id: string): Promise<PrepareIncomingResult | null> {
    const migration = this.progress(id).migration;
    return migration?.role === 'destination' ? resultOf(migration.record) : null;
  }

  async startMigration(
    id: string,
    request: StartMigrationRequest,
    confirm: () => Promise<void>,
  ): Promise<MigrationStatus> {
    const guest = this.progress(id);
    const current = { record: guest.migration?.record ?? null, status: this.statusOf(guest).status };
    if (decideStartMigration(current, this.runState(guest), request) === 'current')
      return this.statusOf(guest);
    const block = blockTarget(guest.spec, request);
    await confirm();
    const peer = parseSimUri(request.uri);
    const workload = workloadOf(guest.spec);
    if (guest.hypervisorStatus !== 'running') workload.dirtyBytesPerSec = 0;
    const diskBytes = localDisks(guest.spec).reduce((sum, disk) => sum + disk.sizeMb * MIB, 0);
    const startedAtMs = this.now();
    const outgoing: Outgoing = {
      role: 'source',
      record: {
        migrationId: request.migrationId,
        role: 'source',
        uri: request.uri,
        postCopy: request.postCopy,
        nbdUri: block === null ? null : (request.nbdUri ?? null),
        final: null,
        tls: request.tls,
        setupAt: startedAtMs,
        startedAt: startedAtMs,
      },
      peer,
      startedAtMs,
      xbzrle: request.xbzrle ?? false,
      sourcePaused: null,
      workload,
      params: {
        bandwidthBytesPerSec:
          request.maxBandwidthBytes > 0 ? request.maxBandwidthBytes : this.options.profile.linkBytesPerSec,
        downtimeLimitMs: request.downtimeLimitMs,
        autoConverge: request.autoConverge,
        throttleInitialPercent: request.cpuThrottleInitial ?? THROTTLE_DEFAULTS.initial,
        throttleIncrementPercent: request.cpuThrottleIncrement ?? THROTTLE_DEFAULTS.increment,
        throttleMaxPercent: request.maxCpuThrottle ?? THROTTLE_DEFAULTS.max,
      },
      state: startState(workload, block === null ? 0 : diskBytes),
      outcome: null,
      undelivered: [],
      deliveryFailureLogged: false,
    };
    guest.migration = outgoing;
    if (peer === null || peer.guestId !== id || peer.migrationId !== request.migrationId) {
      this.endOutgoing(
        guest,
        'failed',
        `uri '${request.uri}' is not a sim destination for this guest and migration`,
      );
      return this.statusOf(guest);
    }
    try {
      await sendSimEvent(
        peer,
        { event: 'started', guestId: id, sourceUrl: this.options.identity.agentUrl },
        this.options.peerCredential,
      );
    } catch (error) {
      outgoing.undelivered = [];
      this.endOutgoing(guest, 'failed', `cannot reach the destination: ${errorMessage(error)}`);
      return this.statusOf(guest);
    }
    this.options.log(`sim migration ${request.migrationId} of ${id} started to ${peer.agentUrl}`);
    this.ensureTicker();
    return this.statusOf(guest);
  }

  async migrationStatus(id: string): Promise<MigrationStatus> {
    return this.statusOf(this.progress(id));
  }

  async setMigrationParameters(id: string, parameters: MigrationParameters): Promise<MigrationStatus> {
    assertMigrationParameters(parameters);
    const guest = this.progress(id);
    const outgoing = this.activeOutgoing(id, guest);
    if (parameters.maxBandwidthBytes !== undefined) {
      outgoing.params.bandwidthBytesPerSec =
        parameters.maxBandwidthBytes > 0
          ? parameters.maxBandwidthBytes
          : this.options.profile.linkBytesPerSec;
    }
    if (parameters.downtimeLimitMs !== undefined)
      outgoing.params.downtimeLimitMs = parameters.downtimeLimitMs;
    if (parameters.cpuThrottleIncrement !== undefined) {
      outgoing.params.throttleIncrementPercent = parameters.cpuThrottleIncrement;
    }
    if (parameters.cpuThrottleInitial !== undefined) {
      outgoing.params.throttleInitialPercent = parameters.cpuThrottleInitial;
    }
    if (parameters.maxCpuThrottle !== undefined)
      outgoing.params.throttleMaxPercent = parameters.maxCpuThrottle;
    return this.statusOf(this.progress(id));
  }

  async startPostCopy(id: string): Promise<MigrationStatus> {
    const guest = this.progress(id);
    const migration = guest.migration;
    const decision = decidePostCopy(id, {
      record: migration?.record ?? null,
      status: this.statusOf(guest).status,
      mirroring: migration?.role === 'source' && migration.state.phase === 'setup',
    });
    if (decision === 'current') return this.statusOf(guest);
    const outgoing = this.activeOutgoing(id, guest);
    // From here on the source's memory is stale for good: it must never run again (decideResume).
    outgoing.record.postCopyStarted = true;
    outgoing.state = switchToPostCopy(outgoing.state, outgoing.workload);
    this.applySourceEffects(guest, outgoing);
    this.deliver(outgoing);
    return this.statusOf(guest);
  }

  async cancelMigration(id: string): Promise<MigrationStatus> {
    const guest = this.progress(id);
    const migration = guest.migration;
    if (decideCancel(this.migrationView(guest)) === 'current' || migration?.role !== 'source') {
      return this.statusOf(guest);
    }
    this.endOutgoing(guest, 'cancelled', null);
    this.deliver(migration);
    return this.statusOf(guest);
  }

  async cleanup(id: string, request: CleanupRequest): Promise<{ cleaned: boolean }> {
    const guest = this.guests.has(id) ? this.progress(id) : null;
    const current =
      guest === null
        ? null
        : {
            record: guest.migration?.record ?? null,
            status: this.statusOf(guest).status,
            runState: this.runState(guest),
          };
    if (decideCleanup(current, request) === 'nothing') return { cleaned: false };
    this.guests.delete(id);
    this.options.log(`cleaned ${request.role} guest ${id} of migration ${request.migrationId}`);
    return { cleaned: true };
  }

  async exportDisk(id: string, diskId: string, request: DiskExportRequest): Promise<DiskExportResult> {
    const guest = this.progress(id);
    localDiskOf(guest.spec, diskId);
    assertDiskQuiet(id, diskId, this.runState(guest), guest.hypervisorStatus !== null, 'export');
    assertNotImporting(id, diskId, this.diskCopiesOf(guest));
    const { identity } = this.options;
    const listenAddress = request.listenAddress ?? identity.migrationAddress ?? identity.address;
    const existing = guest.diskExports.get(diskId) ?? null;
    if (decideExport(existing, listenAddress) === 'current' && existing !== null) {
      return { nbdUri: existing.nbdUri };
    }
    const nbdUri = simExportUri(identity.agentUrl, id, diskId);
    guest.diskExports.set(diskId, { nbdUri, listenAddress });
    this.options.log(`sim guest ${id}: disk ${diskId} exported as ${nbdUri}`);
    return { nbdUri };
  }

  async diskExport(id: string, diskId: string): Promise<DiskExportResult | null> {
    const running = this.guests.get(id)?.diskExports.get(diskId);
    return running === undefined ? null : { nbdUri: running.nbdUri };
  }

  async stopDiskExport(id: string, diskId: string): Promise<{ stopped: boolean }> {
    const guest = this.guests.get(id);
    return { stopped: guest?.diskExports.delete(diskId) ?? false };
  }

  async importDisk(
    id: string,
    diskId: string,
    request: DiskImportRequest,
    confirm: () => Promise<void>,
  ): Promise<DiskCopyStatus> {
    const guest = this.progress(id);
    const disk = localDiskOf(guest.spec, diskId);
    if (parseSimExportUri(request.nbdUri) === null) {
      throw new AgentFailure(
        400,
        'invalid_request',
        `nbdUri: expected sim+nbd://<agent>/<guestId>/<diskId> as a sim agent's export returns it, got '${request.nbdUri}'`,
        'nbdUri',
      );
    }
    assertDiskQuiet(id, diskId, this.runState(guest), guest.hypervisorStatus !== null, 'import');
    assertNotExported(id, diskId, this.diskCopiesOf(guest));
    const current = guest.diskImports.get(diskId);
    if (current !== undefined && decideImport(this.importStatusOf(current), request.nbdUri) === 'current') {
      return this.importStatusOf(current);
    }
    await confirm();
    const copy: SimImport = {
      nbdUri: request.nbdUri,
      startedAtMs: this.now(),
      totalBytes: disk.sizeMb * MIB,
      bytesPerSec: this.options.profile.linkBytesPerSec,
      failure: null,
    };
    guest.diskImports.set(diskId, copy);
    this.options.log(`sim guest ${id}: importing disk ${diskId} from ${request.nbdUri}`);
    return this.importStatusOf(copy);
  }

  async diskImportStatus(id: string, diskId: string): Promise<DiskCopyStatus> {
    const copy = this.progress(id).diskImports.get(diskId);
    if (copy === undefined) throw importNotFound(id, diskId);
    return this.importStatusOf(copy);
  }

  async usage(): Promise<HostUsage> {
    const { profile } = this.options;
    const guests = [...this.guests.keys()].map((id) => {
      const guest = this.progress(id);
      const running = guest.hypervisorStatus === 'running';
      return {
        id,
        cpuPercent: running ? guestCpuPercent(guest.spec) : 0,
        memoryBytes: guest.hypervisorStatus === null ? 0 : guest.spec.memoryMb * MIB,
        vcpus: guest.spec.vcpus,
      };
    });
    const busyCpus = guests.reduce((sum, g) => sum + (g.cpuPercent / 100) * g.vcpus, 0);
    const usedBytes = guests.reduce((sum, g) => sum + g.memoryBytes, 0);
    return {
      cpuPercent: Math.min(100, (busyCpus / profile.cpus) * 100),
      memAvailableBytes: Math.max(0, profile.memoryMb * MIB - usedBytes),
      guests: guests.map(({ id, cpuPercent, memoryBytes }) => ({ id, cpuPercent, memoryBytes })),
    };
  }

  async shutdown(): Promise<void> {
    if (this.ticker !== null) clearInterval(this.ticker);
    this.ticker = null;
    this.unregisterPeer?.();
  }

  /** The model lives in this process only: letting go is stopping. */
  async detach(): Promise<void> {
    await this.shutdown();
  }

  /**
   * As the qemu driver's SIGKILL of every QEMU: each guest stops where it is and is to stay stopped.
   * An outgoing migration fails on both ends; an incoming one fails here, so no later event from its
   * source runs the guest here (the model does not tell that source, unlike a broken QEMU stream).
   */
  async fence(reason: string): Promise<void> {
    this.options.log(`fencing: stopping every sim guest (${reason})`);
    for (const [id, guest] of this.guests) {
      this.progress(id);
      const migration = guest.migration;
      if (
        migration?.role === 'source' &&
        migration.outcome === null &&
        migration.state.phase !== 'completed'
      ) {
        this.endOutgoing(guest, 'failed', `source host fenced itself: ${reason}`);
        this.deliver(migration);
      }
      if (migration?.role === 'destination' && !isFinished(migration.status.status)) {
        migration.status = {
          ...migration.status,
          status: 'failed',
          errorDesc: `destination host fenced itself: ${reason}`,
        };
      }
      guest.clock = pauseClock(guest.clock, this.now());
      guest.hypervisorStatus = null;
      guest.desired = 'stopped';
      guest.diskExports.clear();
      for (const copy of guest.diskImports.values()) {
        if (this.importStatusOf(copy).status === 'copying') {
          copy.failure = { error: `destination host fenced itself: ${reason}`, atMs: this.now() };
        }
      }
    }
  }

  async receiveSimEvent(migrationId: string, event: SimEvent): Promise<void> {
    const guest = this.guests.get(event.guestId);
    const incoming = guest?.migration;
    if (
      guest === undefined ||
      incoming?.role !== 'destination' ||
      incoming.record.migrationId !== migrationId
    ) {
      throw new AgentFailure(
        404,
        'migration_not_found',
        `no incoming migration '${migrationId}' of guest '${event.guestId}'`,
      );
    }
    if (isFinished(incoming.status.status)) return;
    switch (event.event) {
      case 'started':
        incoming.status = { ...incoming.status, status: 'active' };
        return;
      case 'postcopy':
        incoming.record.postCopyStarted = true;
        this.runOnDestination(guest, event.heartbeatSeconds, event.runningFromMs, event.paused ?? false);
        incoming.status = { ...incoming.status, status: 'postcopy-active' };
        return;
      case 'completed':
        if (guest.hypervisorStatus === 'inmigrate')
          this.runOnDestination(guest, event.heartbeatSeconds, event.runningFromMs, event.paused ?? false);
        incoming.status = {
          ...incoming.status,
          status: 'completed',
          transferredBytes: event.transferredBytes,
          totalBytes: event.totalBytes,
          downtimeMs: event.downtimeMs,
          totalTimeMs: event.totalTimeMs,
        };
        this.options.log(`sim migration ${migrationId}: guest ${event.guestId} now runs here`);
        return;
      case 'failed':
      case 'cancelled':
        // As QEMU: a destination whose incoming stream breaks exits.
        guest.hypervisorStatus = null;
        guest.crashed = true;
        guest.clock = pauseClock(guest.clock, this.now());
        incoming.status = { ...incoming.status, status: event.event, errorDesc: event.errorDesc };
        return;
    }
  }

  /** A guest paused at the switch-over arrives paused (QEMU carries the run state over). */
  private runOnDestination(
    guest: SimGuest,
    heartbeatSeconds: number,
    runningFromMs: number,
    paused: boolean,
  ): void {
    if (paused) {
      guest.clock = { baseSeconds: heartbeatSeconds, runningSinceMs: null, pausedAtMs: runningFromMs };
      guest.hypervisorStatus = 'paused';
      guest.desired = 'paused';
      return;
    }
    guest.clock = { baseSeconds: heartbeatSeconds, runningSinceMs: runningFromMs, pausedAtMs: null };
    guest.hypervisorStatus = 'running';
    guest.desired = 'running';
  }

  /** A copy at the link speed: copying until sizeMb × MiB went through, then completed. */
  private importStatusOf(copy: SimImport): DiskCopyStatus {
    const base = { nbdUri: copy.nbdUri, startedAt: copy.startedAtMs, totalBytes: copy.totalBytes };
    const durationMs = (copy.totalBytes / copy.bytesPerSec) * 1000;
    const copiedBy = (atMs: number) =>
      Math.min(copy.totalBytes, Math.floor(((atMs - copy.startedAtMs) / 1000) * copy.bytesPerSec));
    if (copy.failure !== null) {
      return {
        ...base,
        status: 'failed',
        copiedBytes: copiedBy(copy.failure.atMs),
        error: copy.failure.error,
        finishedAt: copy.failure.atMs,
      };
    }
    const now = this.now();
    if (now - copy.startedAtMs >= durationMs) {
      return {
        ...base,
        status: 'completed',
        copiedBytes: copy.totalBytes,
        error: null,
        finishedAt: Math.round(copy.startedAtMs + durationMs),
      };
    }
    return { ...base, status: 'copying', copiedBytes: copiedBy(now), error: null, finishedAt: null };
  }

  private diskCopiesOf(guest: SimGuest): DiskCopies {
    return {
      exported: [...guest.diskExports.keys()],
      importing: [...guest.diskImports.entries()]
        .filter(([, copy]) => this.importStatusOf(copy).status === 'copying')
        .map(([diskId]) => diskId),
    };
  }

  private memoryHolders(): MemoryHolder[] {
    return [...this.guests.values()]
      .filter((guest) => guest.hypervisorStatus !== null)
      .map((guest) => ({ id: guest.spec.id, memoryMb: guest.spec.memoryMb }));
  }

  /** Brings a guest's migration up to now and applies what happened on the way. */
  private progress(id: string): SimGuest {
    const guest = this.guests.get(id);
    if (guest === undefined) throw guestNotFound(id);
    const migration = guest.migration;
    if (migration?.role === 'source' && migration.outcome === null && migration.state.phase !== 'completed') {
      migration.state = advance(
        migration.state,
        migration.workload,
        migration.params,
        this.now() - migration.startedAtMs,
      );
      this.applySourceEffects(guest, migration);
      this.deliver(migration);
    }
    return guest;
  }

  private applySourceEffects(guest: SimGuest, outgoing: Outgoing): void {
    const { state } = outgoing;
    if (state.switchoverAtMs === null) return;
    const switchoverEpochMs = outgoing.startedAtMs + state.switchoverAtMs;
    const runningFromMs = switchoverEpochMs + (state.downtimeMs ?? 0);
    if (guest.hypervisorStatus === 'running' || guest.hypervisorStatus === 'paused') {
      outgoing.sourcePaused = guest.hypervisorStatus === 'paused';
      guest.clock = pauseClock(guest.clock, switchoverEpochMs);
      guest.hypervisorStatus = 'finish-migrate';
      const heartbeatSeconds = runningSeconds(guest.clock, switchoverEpochMs);
      if (state.phase === 'postcopy-active') {
        outgoing.undelivered.push({
          event: 'postcopy',
          guestId: guest.spec.id,
          runningFromMs,
          heartbeatSeconds,
          paused: outgoing.sourcePaused,
        });
      }
    }
    if (state.phase === 'completed' && guest.hypervisorStatus === 'finish-migrate') {
      guest.hypervisorStatus = 'postmigrate';
      // A completed source must never be restarted on its own: the guest lives on the destination.
      guest.desired = 'paused';
      const figures = statusFigures(state, outgoing.workload, outgoing.params);
      outgoing.undelivered.push({
        event: 'completed',
        guestId: guest.spec.id,
        runningFromMs,
        heartbeatSeconds: runningSeconds(guest.clock, switchoverEpochMs),
        transferredBytes: figures.transferredBytes,
        totalBytes: figures.totalBytes,
        downtimeMs: figures.downtimeMs ?? 0,
        totalTimeMs: figures.totalTimeMs,
        paused: outgoing.sourcePaused ?? false,
      });
      this.options.log(`sim migration ${outgoing.record.migrationId} of ${guest.spec.id} completed`);
    }
  }

  private endOutgoing(guest: SimGuest, status: 'failed' | 'cancelled', errorDesc: string | null): void {
    const outgoing = guest.migration;
    if (outgoing?.role !== 'source') return;
    outgoing.outcome = { status, errorDesc, atMs: this.now() };
    outgoing.undelivered.push({ event: status, guestId: guest.spec.id, errorDesc });
    if (errorDesc !== null)
      this.options.log(
        `sim migration ${outgoing.record.migrationId} of ${guest.spec.id} ${status}: ${errorDesc}`,
      );
  }

  /** Sends pending events in order; what fails stays queued for the next look or tick. */
  private deliver(outgoing: Outgoing): void {
    if (outgoing.peer === null || outgoing.undelivered.length === 0 || this.delivering.has(outgoing)) return;
    const peer = outgoing.peer;
    this.delivering.add(outgoing);
    void (async () => {
      try {
        while (outgoing.undelivered.length > 0) {
          await sendSimEvent(peer, outgoing.undelivered[0]!, this.options.peerCredential);
          outgoing.undelivered.shift();
        }
      } catch (error) {
        if (!outgoing.deliveryFailureLogged) {
          this.options.log(
            `sim migration ${outgoing.record.migrationId}: cannot notify destination: ${errorMessage(error)}`,
          );
          outgoing.deliveryFailureLogged = true;
        }
      } finally {
        this.delivering.delete(outgoing);
      }
    })();
  }

  private ensureTicker(): void {
    if (this.ticker !== null) return;
    this.ticker = setInterval(() => this.tick(), 1000);
    this.ticker.unref();
  }

  private tick(): void {
    let busy = false;
    for (const [id, guest] of this.guests) {
      if (guest.migration?.role !== 'source') continue;
      this.progress(id);
      const migration = guest.migration;
      if (migration.undelivered.length > 0) this.deliver(migration);
      if (
        (migration.outcome === null && migration.state.phase !== 'completed') ||
        migration.undelivered.length > 0
      ) {
        busy = true;
      }
    }
    if (!busy && this.ticker !== null) {
      clearInterval(this.ticker);
      this.ticker = null;
    }
  }

  private activeOutgoing(id: string, guest: SimGuest): Outgoing {
    const migration = guest.migration;
    if (migration?.role !== 'source' || migration.outcome !== null || migration.state.phase === 'completed') {
      throw conflict('no_active_migration', `guest '${id}' has no outgoing migration in progress`);
    }
    return migration;
  }

  private migrationView(guest: SimGuest): MigrationView {
    const record = guest.migration?.record ?? null;
    return { record, status: this.statusOf(guest).status, postCopyStarted: record?.postCopyStarted ?? false };
  }

  private statusOf(guest: SimGuest): MigrationStatus {
    const migration = guest.migration;
    if (migration === null) return noMigrationStatus();
    if (migration.role === 'destination') {
      return {
        ...migration.status,
        ...noDiskFigures,
        setupAt: null,
        startedAt: null,
        tls: migration.record.tls ?? false,
        postCopyStarted: migration.record.postCopyStarted ?? false,
      };
    }
    const figures = statusFigures(migration.state, migration.workload, migration.params);
    const base: MigrationStatus = {
      migrationId: migration.record.migrationId,
      ...figures,
      errorDesc: null,
      status: 'active',
      setupAt: migration.record.setupAt ?? null,
      startedAt: migration.record.startedAt ?? null,
      tls: migration.record.tls ?? false,
      postCopyStarted: migration.record.postCopyStarted ?? false,
    };
    if (migration.outcome !== null) {
      return {
        ...base,
        status: migration.outcome.status,
        errorDesc: migration.outcome.errorDesc,
        mbps: 0,
        expectedDowntimeMs: null,
      };
    }
    return { ...base, status: migration.state.phase };
  }

  private runState(guest: SimGuest): GuestRunState {
    if (guest.crashed) return 'crashed';
    switch (guest.hypervisorStatus) {
      case 'running':
        return 'running';
      case 'inmigrate':
        return 'incoming';
      case null:
        return guest.everStarted ? 'stopped' : 'defined';
      default:
        return 'paused';
    }
  }

  private view(id: string): GuestState {
    const guest = this.progress(id);
    const now = this.now();
    const hasHeartbeat = guest.clock.runningSinceMs !== null || guest.clock.pausedAtMs !== null;
    return {
      id,
      name: guest.spec.name,
      status: this.runState(guest),
      spec: guest.spec,
      hypervisorStatus: guest.hypervisorStatus,
      pid: null,
      heartbeat: hasHeartbeat
        ? {
            counter: heartbeatCounter(guest.clock, now),
            at: new Date(heartbeatAtMs(guest.clock, now)).toISOString(),
          }
        : null,
    };
  }
}

/** An incoming migration that ended: later events from its source change nothing (a fenced destination stays stopped). */
function isFinished(status: MigrationStatus['status']): boolean {
  return status === 'completed' || status === 'failed' || status === 'cancelled';
}

/** A sim export names the source agent, the guest and the disk; nothing listens there. */
export function simExportUri(agentUrl: string, guestId: string, diskId: string): string {
  return `sim+nbd://${new URL(agentUrl).host}/${encodeURIComponent(guestId)}/${encodeURIComponent(diskId)}`;
}

export function parseSimExportUri(
  uri: string,
): { agentHost: string; guestId: string; diskId: string } | null {
  const match = /^sim\+nbd:\/\/([^/]+)\/([^/]+)\/([^/]+)$/.exec(uri);
  if (match === null) return null;
  try {
    return {
      agentHost: match[1]!,
      guestId: decodeURIComponent(match[2]!),
      diskId: decodeURIComponent(match[3]!),
    };
  } catch {
    return null;
  }
}

/** The port a sim destination's nbdUri names (NBD's well-known port; nothing listens). */
const SIM_NBD_PORT = 10809;

function resultOf(record: MigrationRecord): PrepareIncomingResult {
  return { migrationId: record.migrationId, uri: record.uri, nbdUri: record.nbdUri };
}

/** A guest that rewrites memory is busy: the model's CPU load grows with the dirty rate. */
export function guestCpuPercent(spec: GuestSpec): number {
  return Math.min(100, 2 + spec.dirtyRateMibs);
}
