import { createHash } from 'node:crypto';
import { readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
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
} from '../../domain/agent-contract.ts';
import type { AgentIdentity, GuestUsage, HostUsage, HypervisorDriver } from '../driver.ts';
import { AgentFailure, conflict, guestNotFound } from '../errors.ts';
import type { PlatformFacts } from '../facts.ts';
import {
  assertDiskQuiet,
  assertMemoryAvailable,
  assertMigrationParameters,
  assertNoDiskCopy,
  assertNotExported,
  assertNotImporting,
  assertSafeSpec,
  blockTarget,
  decideCancel,
  decideCleanup,
  decideDefine,
  decideImport,
  decidePause,
  decidePostCopy,
  decidePrepareIncoming,
  decideResume,
  decideStart,
  decideStartMigration,
  decideStop,
  hostPort,
  importNotFound,
  isMigrationActive,
  isMigrationFinished,
  localDiskOf,
  localDisks,
  type MemoryHolder,
  type MigrationRecord,
  type MigrationView,
  type NbdAddress,
  nbdUri,
  noDiskFigures,
  noMigrationStatus,
  tcpUriHost,
} from '../guest-rules.ts';
import { KeyedMutex } from '../keyed-mutex.ts';
import { errorMessage, type Logger } from '../log.ts';
import { cpuPercent, type ProcessSample, sampleProcess } from '../proc-stat.ts';
import { QmpClient, QmpError, type QmpEvent } from '../qmp.ts';
import { effectiveCacheMode, ensureQcow2, fileExists } from './disk-images.ts';
import {
  type BlockJobInfo,
  mirrorJobId,
  type MirrorJobs,
  mirrorJobs,
  mirrorTargetNode,
  isWildcardAddress,
  processListeningPorts,
} from './qemu-block.ts';
import { parseNbdExportUri, QemuDiskCopies } from './qemu-disk-copy.ts';
import {
  authzObjectArgs,
  DEFAULT_DN_TEMPLATE,
  HostTls,
  incomingTlsParameters,
  outgoingTlsParameters,
  TLS_AUTHZ_ID,
  TLS_OBJECT_ID,
  tlsClientObjectArgs,
} from './qemu-tls.ts';
import { GuestStore, type StoredGuest } from './guest-store.ts';
import { type QemuDisk, qemuArguments } from './qemu-command.ts';
import {
  bandwidthParameters,
  completionFiguresPending,
  incomingPort,
  migrationParameterArgs,
  normaliseQueryMigrate,
  type QueryMigrate,
  runStateOf,
} from './qemu-migration.ts';
import { isGuestQemu, signal, spawnQemu, waitForExit } from './qemu-process.ts';
import { readHeartbeat } from './serial-heartbeat.ts';
import { qgaPing } from './qemu-guest-agent.ts';

const MIB = 1024 * 1024;
/** A completed source's figures come within milliseconds (completionFiguresPending): up to 100 ms of asking. */
const FIGURES_RETRIES = 20;
const FIGURES_RETRY_MS = 5;
/** Unix socket paths are limited to 108 bytes; longer ones move to the temp dir under a stable name. */
const MAX_SOCKET_PATH = 100;

export interface QemuDriverOptions {
  identity: AgentIdentity;
  agentDir: string;
  guestImageDir: string;
  platform: PlatformFacts;
  log: Logger;
  qemuBinary?: string;
  qemuImgBinary?: string;
  /** Serves local disks for a cold migration's copy (default qemu-nbd). */
  qemuNbdBinary?: string;
  /** How long QEMU may take to exit after `quit` before it is killed. */
  stopGraceMs?: number;
  /** Migration TLS: the CA certificate, and this host's own credentials in hosts/<name>/ (see qemu-tls.ts). */
  tlsDir: string;
  /** The CA key that issues this host's credentials when they are missing (dev, tests); null/absent: never. */
  tlsCaKey?: string | null;
  /** Subject DN of every host's certificate, `{host}` for its name (default CN={host}). */
  tlsDnTemplate?: string;
  /** How long the mirrors may take to catch up at switch-over, the guest paused (default 60 s). */
  mirrorCompleteTimeoutMs?: number;
  /**
   * Set when the previous agent's lease may have expired (domain/fencing.ts fenceAtStartup): init
   * stops the guests it left instead of reattaching to or restarting them. The reason is logged.
   */
  fenceAtStartup?: string | null;
}

/** QEMU's own defaults, restored on every start so that one migration's settings do not leak into the next. */
const THROTTLE_DEFAULTS = { initial: 20, increment: 10, max: 99 } as const;

/** A QEMU process of a guest, as far as this agent run knows it. */
interface Running {
  pid: number;
  qmp: QmpClient | null;
  connecting: Promise<QmpClient> | null;
  /** Set when the process was spawned by this run and has exited. */
  exitReason: string | null;
}

/**
 * Real QEMU guests (TCG here, KVM in production) driven over QMP. Each guest lives in
 * <agentDir>/guests/<id>/: spec.json and state.json (desired state, migration record, pid), the
 * serial log (heartbeat), the QMP socket and local disks. Shared disks live in
 * <sharedStorage>/<guestId>/ and are never deleted by the agent.
 */
export class QemuDriver implements HypervisorDriver {
  readonly kind = 'qemu' as const;
  private readonly store: GuestStore;
  private readonly guests = new Map<string, StoredGuest>();
  private readonly running = new Map<string, Running>();
  private readonly cpuSamples = new Map<string, { sample: ProcessSample; atMs: number }>();
  private readonly qemuBinary: string;
  /** Serialises the steps of a block migration (and its cancel) per guest. */
  private readonly blockWork = new KeyedMutex();
  /** One guest-ping at a time per guest (guestPing). */
  private readonly guestAgentPings = new KeyedMutex();
  private readonly queuedBlockSteps = new Set<string>();
  /** Guests whose block migration is being failed (RAM copy cancelled, mirrors stopped) right now. */
  private readonly failingBlock = new Set<string>();
  private readonly migrationListeners: ((guestId: string) => void)[] = [];
  private fencing: Promise<void> | null = null;
  /** Cold migration: qemu-nbd exports (source) and qemu-img copies (destination) of local disks. */
  private readonly diskCopies: QemuDiskCopies;
  /** This host's migration TLS credentials (its own certificate, the peers' DNs). */
  private readonly tls: HostTls;

  constructor(private readonly options: QemuDriverOptions) {
    this.store = new GuestStore(options.agentDir);
    const { identity } = options;
    this.tls = new HostTls({
      tlsDir: options.tlsDir,
      hostName: identity.name,
      addresses: [identity.migrationAddress, identity.address].filter((a): a is string => a !== null),
      caKeyFile: options.tlsCaKey ?? null,
      dnTemplate: options.tlsDnTemplate ?? DEFAULT_DN_TEMPLATE,
      log: options.log,
    });
    this.qemuBinary = options.qemuBinary ?? 'qemu-system-x86_64';
    this.diskCopies = new QemuDiskCopies({
      qemuImg: options.qemuImgBinary ?? 'qemu-img',
      qemuNbd: options.qemuNbdBinary ?? 'qemu-nbd',
      log: options.log,
    });
  }

  async init(): Promise<void> {
    // Never fatal: a host without its certificates still runs guests, and answers TLS with tls_unavailable.
    await this.tls
      .ensure()
      .catch((error) => this.options.log(`migration TLS credentials: ${errorMessage(error)}`));
    const fenceReason = this.options.fenceAtStartup ?? null;
    if (fenceReason !== null) return this.initFenced(fenceReason);
    for (const id of await this.store.ids()) {
      const guest = await this.store.load(id);
      if (guest === null) continue;
      this.guests.set(id, guest);
      await this.diskCopies
        .recover(id, this.diskCopyDir(id), this.localDiskDir(id))
        .catch((error) =>
          this.options.log(`guest ${id}: cannot recover its disk copies: ${errorMessage(error)}`),
        );
      if (guest.pid !== null && (await isGuestQemu(guest.pid, this.store.dir(id)))) {
        this.running.set(id, { pid: guest.pid, qmp: null, connecting: null, exitReason: null });
        try {
          await this.qmp(id);
          this.options.log(`reattached to QEMU ${guest.pid} of guest ${id}`);
          // A block migration carries on where the previous agent left it (events may have been missed).
          if (guest.migration?.block && guest.migration.final === null) void this.kickBlock(id);
        } catch (error) {
          this.options.log(
            `guest ${id}: QEMU ${guest.pid} is alive but QMP does not answer: ${errorMessage(error)}`,
          );
        }
      } else if (guest.desired === 'running' && (await this.diskCopies.copiesOf(id)).exported.length > 0) {
        this.options.log(`guest ${id} should run but a disk of it is exported for a copy: it stays stopped`);
      } else if (guest.desired === 'running') {
        this.options.log(`guest ${id} should run but its QEMU is gone: starting it again`);
        await this.launch(guest, false).catch((error) =>
          this.options.log(`guest ${id}: restart failed: ${errorMessage(error)}`),
        );
      }
    }
  }

  async facts(): Promise<HostFacts> {
    const { identity, platform } = this.options;
    const committedMb = this.memoryHolders().reduce((sum, holder) => sum + holder.memoryMb, 0);
    return {
      hostId: identity.hostId,
      name: identity.name,
      agentUrl: identity.agentUrl,
      address: identity.address,
      migrationAddress: identity.migrationAddress,
      driver: 'qemu',
      ...platform,
      freeMemoryMb: Math.max(0, platform.memoryMb - committedMb),
      networks: identity.networks,
      sharedStoragePath: identity.sharedStoragePath,
      tlsReady: await this.tls.ready(),
    };
  }

  async listGuests(): Promise<GuestState[]> {
    return Promise.all([...this.guests.keys()].map((id) => this.view(id)));
  }

  async getGuest(id: string): Promise<GuestState | null> {
    return this.guests.has(id) ? this.view(id) : null;
  }

  async guestPing(id: string, timeoutMs: number): Promise<boolean> {
    this.guest(id);
    if (!(await this.alive(id))) return false;
    // QEMU serves the channel's socket to one client at a time: a second ping would wait out its timeout.
    return this.guestAgentPings.run(id, () => qgaPing(this.guestAgentSocketPath(id), timeoutMs));
  }

  async defineGuest(spec: GuestSpec): Promise<GuestState> {
    assertSafeSpec(spec);
    const existing = this.guests.get(spec.id);
    if (decideDefine(existing?.spec ?? null, spec) === 'create') {
      this.assertNetworks(spec);
      assertMemoryAvailable(this.options.platform.memoryMb, this.memoryHolders(), spec);
      const guest: StoredGuest = { spec, desired: 'stopped', everStarted: false, migration: null, pid: null };
      await this.store.save(guest);
      this.guests.set(spec.id, guest);
      await this.resolveDisks(spec, true);
      this.options.log(`defined guest ${spec.id} (${spec.name})`);
    }
    return this.view(spec.id);
  }

  async startGuest(id: string): Promise<GuestState> {
    const guest = this.guest(id);
    const state = await this.view(id);
    if (decideStart(id, state.status, await this.migrationView(id)) === 'already') return state;
    assertNoDiskCopy(id, await this.diskCopies.copiesOf(id));
    assertMemoryAvailable(this.options.platform.memoryMb, this.memoryHolders(), guest.spec);
    await this.terminate(id);
    guest.migration = null;
    await this.launch(guest, false);
    return this.view(id);
  }

  async stopGuest(id: string): Promise<GuestState> {
    const guest = this.guest(id);
    decideStop(id, (await this.migrationStatus(id)).status);
    guest.desired = 'stopped';
    await this.store.save(guest);
    await this.terminate(id);
    return this.view(id);
  }

  async resumeGuest(id: string, request: ResumeRequest = {}): Promise<GuestState> {
    const guest = this.guest(id);
    const current = await this.migrationView(id);
    const state = await this.view(id);
    if (decideResume(id, state.status, current, request) === 'already') return state;
    await (await this.qmp(id)).execute('cont');
    // Resuming a source after its migration completed is a rollback: the guest is back here.
    if (guest.migration?.role === 'source' && current.status === 'completed') guest.migration = null;
    guest.desired = 'running';
    await this.store.save(guest);
    this.options.log(`resumed guest ${id}`);
    return this.view(id);
  }

  async pauseGuest(id: string): Promise<GuestState> {
    const guest = this.guest(id);
    const state = await this.view(id);
    if (decidePause(id, state.status) === 'already') return state;
    await (await this.qmp(id)).execute('stop');
    guest.desired = 'paused';
    await this.store.save(guest);
    this.options.log(`paused guest ${id}`);
    return this.view(id);
  }

  async destroyGuest(id: string): Promise<boolean> {
    if (!this.guests.has(id)) return false;
    await this.diskCopies.stopGuest(id);
    await this.terminate(id);
    await this.store.remove(id);
    this.guests.delete(id);
    this.cpuSamples.delete(id);
    this.options.log(`destroyed guest ${id}`);
    return true;
  }

  async prepareIncoming(id: string, request: PrepareIncomingRequest): Promise<PrepareIncomingResult> {
    if (request.spec.id !== id)
      throw new AgentFailure(400, 'id_mismatch', `spec.id must be '${id}'`, 'spec.id');
    assertSafeSpec(request.spec);
    const existing = this.guests.get(id);
    const decision = decidePrepareIncoming(
      existing === undefined
        ? null
        : { spec: existing.spec, migration: existing.migration, alive: await this.alive(id) },
      request,
    );
    if (decision === 'existing' && existing?.migration) return resultOf(existing.migration);
    const { listenAddress } = request;
    if (listenAddress !== undefined) assertBindAddress(listenAddress, 'listenAddress');
    const guest =
      decision === 'listen' && existing !== undefined ? existing : await this.launchIncoming(id, request);
    if (listenAddress !== undefined) {
      await this.orDiscardIncoming(id, () => this.listenIncoming(guest, request, listenAddress));
    }
    this.options.log(
      `guest ${id}: incoming migration ${request.migrationId} ` +
        (listenAddress === undefined
          ? 'started, listening nowhere yet'
          : `listens on ${guest.migration!.uri}`) +
        (request.tls ? ` (TLS, admitting ${this.admitted(request)})` : '') +
        (guest.migration!.nbdUri ? `, local disks exported on ${guest.migration!.nbdUri}` : ''),
    );
    return resultOf(guest.migration!);
  }

  /** The incoming QEMU started and set up (`-incoming defer`), listening nowhere yet. */
  private async launchIncoming(id: string, request: PrepareIncomingRequest): Promise<StoredGuest> {
    const existing = this.guests.get(id);
    const local = localDisks(request.spec);
    if (existing?.migration?.final?.status === 'completed' && local.length > 0) {
      throw conflict(
        'migration_completed',
        `migration '${request.migrationId}' completed here and the guest's local disks hold its data; clean it up first`,
        'migrationId',
      );
    }
    this.assertNetworks(request.spec);
    assertMemoryAvailable(
      this.options.platform.memoryMb,
      this.memoryHolders(),
      request.spec,
      'spec.memoryMb',
    );
    if (request.tls) await this.tls.assertFiles('server');
    for (const disk of request.spec.disks.filter((d) => d.storage === 'shared')) {
      if (!(await fileExists(this.sharedDiskPath(id, disk.id)))) {
        throw conflict(
          'shared_disk_missing',
          `shared disk '${disk.id}' is not at ${this.sharedDiskPath(id, disk.id)}`,
          'spec.disks',
        );
      }
    }
    await this.terminate(id);
    const guest: StoredGuest = {
      spec: request.spec,
      desired: 'incoming',
      everStarted: true,
      migration: {
        migrationId: request.migrationId,
        role: 'destination',
        uri: '',
        postCopy: request.postCopy,
        nbdUri: null,
        final: null,
        tls: request.tls,
      },
      pid: null,
    };
    this.guests.set(id, guest);
    await this.orDiscardIncoming(id, async () => {
      // Block migration: the source mirrors into new, empty local disks of the same sizes.
      for (const disk of local) {
        const file = this.localDiskPath(id, disk.id);
        await rm(file, { force: true });
        await ensureQcow2(file, disk.sizeMb, this.options.qemuImgBinary);
      }
      await this.launch(guest, true);
      const qmp = await this.qmp(id);
      await qmp.execute('migrate-set-capabilities', {
        capabilities: [
          { capability: 'events', state: true },
          { capability: 'postcopy-ram', state: request.postCopy },
        ],
      });
      // Only the source host's certificate is admitted, for the stream and for the NBD export alike.
      if (admitsOnlySource(request)) {
        await qmp.execute('object-add', authzObjectArgs(this.tls.peerDn(request.sourceHost!)));
      }
      if (request.tls)
        await qmp.execute('migrate-set-parameters', incomingTlsParameters(admitsOnlySource(request)));
      await this.store.save(guest);
    });
    return guest;
  }

  /** The started incoming QEMU listens: the local disks' NBD export, then the migration stream. */
  private async listenIncoming(
    guest: StoredGuest,
    request: PrepareIncomingRequest,
    listenAddress: string,
  ): Promise<void> {
    const id = guest.spec.id;
    const qmp = await this.qmp(id);
    const local = localDisks(guest.spec);
    if (local.length > 0) {
      const port = await this.startNbdServer(id, listenAddress, request.tls, admitsOnlySource(request));
      for (const disk of local) {
        await qmp.execute('nbd-server-add', { device: `drive-${disk.id}`, name: disk.id, writable: true });
      }
      guest.migration!.nbdUri = nbdUri(listenAddress, port);
    }
    await qmp.execute('migrate-incoming', { uri: `tcp:${hostPort(listenAddress, 0)}` });
    const port = incomingPort(await qmp.execute<QueryMigrate>('query-migrate'));
    if (port === null) throw new Error('QEMU did not report the port it listens on');
    guest.migration!.uri = `tcp:${hostPort(listenAddress, port)}`;
    await this.store.save(guest);
  }

  /** A prepare that fails half-way leaves nothing: no QEMU, no record (a retry prepares afresh). */
  private async orDiscardIncoming(id: string, work: () => Promise<void>): Promise<void> {
    try {
      await work();
    } catch (error) {
      await this.terminate(id);
      await this.store.remove(id);
      this.guests.delete(id);
      throw new AgentFailure(
        500,
        'prepare_incoming_failed',
        `cannot prepare incoming QEMU: ${errorMessage(error)}`,
      );
    }
  }

  async incomingMigration(id: string): Promise<PrepareIncomingResult | null> {
    const migration = this.guest(id).migration;
    return migration?.role === 'destination' ? resultOf(migration) : null;
  }

  async startMigration(
    id: string,
    request: StartMigrationRequest,
    confirm: () => Promise<void>,
  ): Promise<MigrationStatus> {
    const guest = this.guest(id);
    const [current, runState] = await Promise.all([
      this.migrationStatus(id),
      this.view(id).then((view) => view.status),
    ]);
    if (
      decideStartMigration({ record: guest.migration, status: current.status }, runState, request) ===
      'current'
    ) {
      return current;
    }
    const setupAt = Date.now();
    const target = blockTarget(guest.spec, request);
    const tlsHostname = request.tlsHostname ?? tcpUriHost(request.uri);
    if (request.tls) {
      if (tlsHostname === null) {
        throw new AgentFailure(
          400,
          'invalid_request',
          `tlsHostname: uri '${request.uri}' is not tcp:<host>:<port>; pass the name the destination's certificate carries`,
          'tlsHostname',
        );
      }
      await this.tls.assertFiles('client');
    }
    // The destination's agent confirms it prepared this uri for this guest (agent/migration-target.ts) while
    // QEMU is set up: settings alone move nothing, and every migration sets them all again.
    const [confirmed, configured] = await Promise.allSettled([
      confirm(),
      this.configureOutgoing(id, request, target !== null, tlsHostname),
    ]);
    if (confirmed.status === 'rejected') throw confirmed.reason;
    if (configured.status === 'rejected') throw configured.reason;
    const qmp = await this.qmp(id);
    const record: MigrationRecord = {
      migrationId: request.migrationId,
      role: 'source',
      uri: request.uri,
      postCopy: request.postCopy,
      nbdUri: target === null ? null : (request.nbdUri ?? null),
      final: null,
      tls: request.tls,
      setupAt,
      startedAt: null,
      block:
        target === null
          ? null
          : {
              disks: localDisks(guest.spec).map((d) => d.id),
              phase: 'mirroring',
              copiedBytes: null,
              error: null,
            },
    };
    guest.migration = record;
    await this.store.save(guest);
    if (target === null) {
      try {
        record.startedAt = Date.now();
        await qmp.execute('migrate', { uri: request.uri });
      } catch (error) {
        record.final = this.decorate(record, {
          ...noMigrationStatus(request.migrationId),
          status: 'failed',
          errorDesc: errorMessage(error),
        });
      }
      await this.store.save(guest);
      this.options.log(`guest ${id}: migration ${request.migrationId} started to ${request.uri}`);
    } else {
      await this.blockWork.run(id, () => this.startMirrors(id, target, request));
      this.options.log(
        `guest ${id}: migration ${request.migrationId} mirrors ${record.block!.disks.join(', ')} to ${request.nbdUri}, then RAM to ${request.uri}`,
      );
    }
    return this.migrationStatus(id);
  }

  async migrationStatus(id: string): Promise<MigrationStatus> {
    const guest = this.guest(id);
    const record = guest.migration;
    if (record === null) return noMigrationStatus();
    if (record.final !== null) return { ...record.final, postCopyStarted: record.postCopyStarted ?? false };
    if (!(await this.alive(id))) {
      const exit = this.running.get(id)?.exitReason ?? 'QEMU is not running';
      return this.finish(guest, {
        ...noMigrationStatus(record.migrationId),
        status: 'failed',
        errorDesc: exit,
      });
    }
    const block = record.role === 'source' ? (record.block ?? null) : null;
    let status: MigrationStatus;
    try {
      const qmp = await this.qmp(id);
      if (block !== null) {
        // Events drive the block migration; a look makes sure that a missed one does not stall it.
        if (block.phase !== 'switched') void this.kickBlock(id);
        const disks = await this.diskFigures(id, block);
        if (this.failingBlock.has(id)) {
          // Not final before the mirrors are stopped and the source runs on its own disks again.
          status = {
            ...noMigrationStatus(record.migrationId),
            ...disks,
            status: 'cancelling',
            errorDesc: block.error,
          };
        } else if (block.phase === 'mirroring') {
          status = {
            ...noMigrationStatus(record.migrationId),
            ...disks,
            status: block.error === null ? 'setup' : 'failed',
            errorDesc: block.error,
          };
        } else {
          status = {
            ...normaliseQueryMigrate(await this.queryMigrate(qmp, record.role), record.migrationId),
            ...disks,
          };
          if (block.error !== null && (status.status === 'cancelled' || status.status === 'none')) {
            status = { ...status, status: 'failed', errorDesc: block.error };
          }
        }
      } else {
        status = normaliseQueryMigrate(await this.queryMigrate(qmp, record.role), record.migrationId);
      }
    } catch (error) {
      if (await this.alive(id)) throw error;
      return this.migrationStatus(id);
    }
    if (record.role === 'destination' && status.status === 'none') status = { ...status, status: 'setup' };
    if (status.status === 'postcopy-active' && record.postCopyStarted !== true) {
      record.postCopyStarted = true;
      await this.store.save(guest);
    }
    status = this.decorate(record, status);
    if (isMigrationFinished(status.status)) return this.finish(guest, status);
    return status;
  }

  async setMigrationParameters(id: string, parameters: MigrationParameters): Promise<MigrationStatus> {
    assertMigrationParameters(parameters);
    await this.assertOutgoingActive(id);
    const args = migrationParameterArgs(parameters);
    const qmp = await this.qmp(id);
    if (Object.keys(args).length > 0) await qmp.execute('migrate-set-parameters', args);
    const block = this.guest(id).migration?.block;
    if (parameters.maxBandwidthBytes !== undefined && block && block.phase !== 'switched') {
      // The cap applies to each disk mirror as well (speed 0 = unlimited, as for max-bandwidth).
      const jobs = mirrorJobs(block.disks, await qmp.execute<BlockJobInfo[]>('query-block-jobs'));
      for (const job of jobs.jobs) {
        if (job === null || job.status === 'concluded') continue;
        await qmp
          .execute('block-job-set-speed', { device: job.device, speed: parameters.maxBandwidthBytes })
          .catch((error) =>
            this.options.log(`guest ${id}: cannot set the speed of ${job.device}: ${errorMessage(error)}`),
          );
      }
    }
    return this.migrationStatus(id);
  }

  async startPostCopy(id: string): Promise<MigrationStatus> {
    const guest = this.guest(id);
    const status = await this.migrationStatus(id);
    const record = guest.migration;
    const decision = decidePostCopy(id, {
      record,
      status: status.status,
      mirroring: record?.block?.phase === 'mirroring',
    });
    if (decision === 'current' || record === null) return status;
    // Recorded before QEMU is asked: should the agent die in between, the source still never runs again.
    record.postCopyStarted = true;
    await this.store.save(guest);
    try {
      await (await this.qmp(id)).execute('migrate-start-postcopy');
    } catch (error) {
      if (error instanceof QmpError) {
        // QEMU refused: post-copy did not begin, the source's memory is still the guest's.
        record.postCopyStarted = false;
        await this.store.save(guest);
      }
      throw error;
    }
    this.options.log(`guest ${id}: switched migration ${record.migrationId} to post-copy`);
    return this.waitForStatus(id, (s) => s !== 'active', 2000);
  }

  async cancelMigration(id: string): Promise<MigrationStatus> {
    const guest = this.guest(id);
    const status = await this.migrationStatus(id);
    const record = guest.migration;
    if (
      decideCancel({ record, status: status.status, postCopyStarted: record?.postCopyStarted ?? false }) ===
        'current' ||
      record === null
    ) {
      return status;
    }
    if (record.block) {
      const cancelled = await this.blockWork.run(id, async () => {
        if (record.final !== null || record.block?.phase !== 'mirroring') return false;
        // No RAM copy yet: stopping the mirrors is the whole cancel.
        await this.teardownMirrors(id);
        await this.finish(
          guest,
          this.decorate(record, {
            ...noMigrationStatus(record.migrationId),
            ...(await this.diskFigures(id, record.block)),
            status: 'cancelled',
            diskReady: false,
          }),
        );
        return true;
      });
      if (cancelled) {
        this.options.log(`guest ${id}: cancelled migration ${record.migrationId} while mirroring its disks`);
        return this.migrationStatus(id);
      }
    }
    await (await this.qmp(id)).execute('migrate_cancel');
    this.options.log(`guest ${id}: cancelled migration ${record.migrationId}`);
    const final = await this.waitForStatus(id, (s) => isMigrationFinished(s), 5000);
    if (record.block && record.block.phase !== 'switched' && (await this.alive(id))) {
      // The source keeps its own disks only: the mirrors stop before the answer.
      await this.blockWork.run(id, () => this.teardownMirrors(id));
    }
    return final;
  }

  async cleanup(id: string, request: CleanupRequest): Promise<{ cleaned: boolean }> {
    const guest = this.guests.get(id);
    const current =
      guest === undefined
        ? null
        : {
            record: guest.migration,
            status: (await this.migrationStatus(id)).status,
            runState: (await this.view(id)).status,
          };
    if (decideCleanup(current, request) === 'nothing') return { cleaned: false };
    if (request.role === 'destination' && guest?.migration?.nbdUri) await this.stopNbdServer(id);
    await this.destroyGuest(id);
    this.options.log(`cleaned ${request.role} guest ${id} of migration ${request.migrationId}`);
    return { cleaned: true };
  }

  async exportDisk(id: string, diskId: string, request: DiskExportRequest): Promise<DiskExportResult> {
    const guest = this.guest(id);
    localDiskOf(guest.spec, diskId);
    assertDiskQuiet(id, diskId, (await this.view(id)).status, await this.alive(id), 'export');
    assertNotImporting(id, diskId, await this.diskCopies.copiesOf(id));
    const image = this.localDiskPath(id, diskId);
    if (!(await fileExists(image))) {
      throw conflict(
        'disk_image_missing',
        `guest '${id}' has no image of disk '${diskId}' at ${image}`,
        'diskId',
      );
    }
    const { identity } = this.options;
    const listenAddress = request.listenAddress ?? identity.migrationAddress ?? identity.address;
    assertBindAddress(listenAddress, 'listenAddress');
    if (request.tls) await this.tls.assertFiles('server');
    const tls = request.tls
      ? {
          dir: this.tls.dir,
          peerDn: request.destinationHost === undefined ? null : this.tls.peerDn(request.destinationHost),
        }
      : null;
    try {
      return {
        nbdUri: await this.diskCopies.exportDisk({
          guestId: id,
          diskId,
          image,
          listenAddress,
          recordDir: this.diskCopyDir(id),
          tls,
        }),
      };
    } catch (error) {
      if (error instanceof AgentFailure) throw error;
      throw new AgentFailure(500, 'export_failed', `cannot export disk '${diskId}': ${errorMessage(error)}`);
    }
  }

  async diskExport(id: string, diskId: string): Promise<DiskExportResult | null> {
    const nbdUri = await this.diskCopies.runningExport(id, diskId);
    return nbdUri === null ? null : { nbdUri };
  }

  async stopDiskExport(id: string, diskId: string): Promise<{ stopped: boolean }> {
    return { stopped: await this.diskCopies.stopExport(id, diskId) };
  }

  async importDisk(
    id: string,
    diskId: string,
    request: DiskImportRequest,
    confirm: () => Promise<void>,
  ): Promise<DiskCopyStatus> {
    const guest = this.guest(id);
    const disk = localDiskOf(guest.spec, diskId);
    if (parseNbdExportUri(request.nbdUri) === null) {
      throw new AgentFailure(
        400,
        'invalid_request',
        `nbdUri: expected nbd://<host>:<port>/<export> as a qemu agent's export returns it, got '${request.nbdUri}'`,
        'nbdUri',
      );
    }
    assertDiskQuiet(id, diskId, (await this.view(id)).status, await this.alive(id), 'import');
    assertNotExported(id, diskId, await this.diskCopies.copiesOf(id));
    const current = this.diskCopies.importStatus(id, diskId);
    if (current !== null && decideImport(current, request.nbdUri) === 'current') return current;
    // The source's agent confirms it exports this disk there (agent/migration-target.ts).
    await confirm();
    if (request.tls) await this.tls.assertFiles('client');
    const source = parseNbdExportUri(request.nbdUri)!;
    return this.diskCopies.importDisk({
      guestId: id,
      diskId,
      nbdUri: request.nbdUri,
      image: this.localDiskPath(id, diskId),
      totalBytes: disk.sizeMb * MIB,
      recordDir: this.diskCopyDir(id),
      tls: request.tls ? { dir: this.tls.dir, hostname: request.tlsHostname ?? source.host } : null,
    });
  }

  async diskImportStatus(id: string, diskId: string): Promise<DiskCopyStatus> {
    this.guest(id);
    const status = this.diskCopies.importStatus(id, diskId);
    if (status === null) throw importNotFound(id, diskId);
    return status;
  }

  /**
   * A monitor (HMP) command for diagnostics and tests, e.g. `qemu-io drive-data "write -P 0xab 0 1M"`
   * to write to a disk as the guest would. Not on the HTTP API.
   */
  async humanMonitorCommand(id: string, commandLine: string): Promise<string> {
    this.guest(id);
    return (await this.qmp(id)).execute<string>('human-monitor-command', { 'command-line': commandLine });
  }

  async usage(): Promise<HostUsage> {
    const { platform } = this.options;
    const now = Date.now();
    const guests: (GuestUsage & { cpuSeconds: number })[] = [];
    let hostCpuSeconds = 0;
    let elapsedForHost = 0;
    for (const [id, run] of this.running) {
      const sample = await sampleProcess(run.pid);
      if (sample === null || sample.state === 'Z') continue;
      const previous = this.cpuSamples.get(id);
      const elapsed = previous === undefined ? sample.ageSeconds : (now - previous.atMs) / 1000;
      const vcpus = this.guests.get(id)?.spec.vcpus ?? 1;
      const percent = cpuPercent(previous?.sample, sample, elapsed, vcpus);
      const used = (percent / 100) * vcpus * elapsed;
      hostCpuSeconds += used;
      elapsedForHost = Math.max(elapsedForHost, elapsed);
      this.cpuSamples.set(id, { sample, atMs: now });
      guests.push({ id, cpuPercent: percent, memoryBytes: sample.rssBytes, cpuSeconds: used });
    }
    const rss = guests.reduce((sum, g) => sum + g.memoryBytes, 0);
    const hostPercent = elapsedForHost > 0 ? (hostCpuSeconds / elapsedForHost / platform.cpus) * 100 : 0;
    return {
      cpuPercent: Math.min(100, hostPercent),
      memAvailableBytes: Math.max(0, platform.memoryMb * MIB - rss),
      guests: guests.map(({ id, cpuPercent: percent, memoryBytes }) => ({
        id,
        cpuPercent: percent,
        memoryBytes,
      })),
    };
  }

  async shutdown(): Promise<void> {
    const ids = [...this.running.keys()];
    if (ids.length > 0) this.options.log(`stopping ${ids.length} QEMU guest(s); their desired state is kept`);
    await Promise.all([...ids.map((id) => this.terminate(id)), this.diskCopies.stopAll('the agent stops')]);
  }

  async detach(): Promise<void> {
    for (const run of this.running.values()) await run.qmp?.close();
    this.running.clear();
    // Exports run on for the next agent to adopt (as QEMUs do); imports end, their status dies here.
    await this.diskCopies.stopAll('the agent let go of its guests', true);
  }

  /**
   * SIGKILL at once, no `quit` and no grace: the lease may expire a few seconds from now, and then the
   * guests may be started elsewhere. The desired state becomes `stopped`, so no restart brings them back.
   */
  async fence(reason: string): Promise<void> {
    this.fencing ??= this.killEveryGuest(reason).finally(() => (this.fencing = null));
    return this.fencing;
  }

  private async killEveryGuest(reason: string): Promise<void> {
    const started = Date.now();
    for (const guest of this.guests.values()) guest.desired = 'stopped';
    const ids = [...this.running.keys()];
    const killed = await Promise.all(
      ids.map(async (id) => {
        const run = this.running.get(id);
        if (run === undefined || !(await this.alive(id))) return null;
        signal(run.pid, 'SIGKILL');
        return run.pid;
      }),
    );
    const pids = killed.filter((pid) => pid !== null);
    this.options.log(
      `fencing: SIGKILL sent to ${pids.length} QEMU process(es) [${pids.join(', ')}] (${reason})`,
    );
    await Promise.all([...this.guests.values()].map((guest) => this.store.save(guest)));
    await Promise.all(ids.map((id) => this.reap(id)));
    this.options.log(`fencing: every guest stopped in ${Date.now() - started} ms; desired state stopped`);
    await this.diskCopies
      .stopAll(`host fenced: ${reason}`)
      .catch((error) => this.options.log(`fencing: cannot stop the disk copies: ${errorMessage(error)}`));
  }

  /** Startup after a possible lease expiry: the guests the previous agent left are killed, not run. */
  private async initFenced(reason: string): Promise<void> {
    const guests: StoredGuest[] = [];
    for (const id of await this.store.ids()) {
      const guest = await this.store.load(id);
      if (guest === null) continue;
      this.guests.set(id, guest);
      guests.push(guest);
    }
    const leftovers = await Promise.all(
      guests.map(async (guest) => {
        const pid = guest.pid;
        if (pid === null || !(await isGuestQemu(pid, this.store.dir(guest.spec.id)))) return null;
        signal(pid, 'SIGKILL');
        return pid;
      }),
    );
    for (const [index, guest] of guests.entries()) {
      const id = guest.spec.id;
      const pid = leftovers[index] ?? null;
      if (pid !== null) this.options.log(`guest ${id}: killed QEMU ${pid} left running (fenced at startup)`);
      else if (guest.desired === 'running')
        this.options.log(`guest ${id} should run but stays stopped (fenced at startup)`);
      guest.desired = 'stopped';
      await this.store.save(guest);
      if (pid !== null && !(await waitForExit(pid, 5000)))
        this.options.log(`guest ${id}: QEMU ${pid} is still there 5 s after SIGKILL`);
      await rm(this.qmpSocketPath(id), { force: true });
    }
    // Disk copies the previous agent left end too: nothing of this host is to be used any more.
    for (const guest of guests) {
      const id = guest.spec.id;
      await this.diskCopies.recover(id, this.diskCopyDir(id), this.localDiskDir(id)).catch(() => undefined);
    }
    await this.diskCopies.stopAll(`fenced at startup: ${reason}`).catch(() => undefined);
    if (guests.length > 0) this.options.log(`fenced ${guests.length} guest(s) at startup: ${reason}`);
  }

  private guest(id: string): StoredGuest {
    const guest = this.guests.get(id);
    if (guest === undefined) throw guestNotFound(id);
    return guest;
  }

  private async view(id: string): Promise<GuestState> {
    const guest = this.guest(id);
    const run = this.running.get(id);
    const alive = await this.alive(id);
    let hypervisorStatus: string | null = null;
    if (alive) {
      try {
        hypervisorStatus = (
          await (await this.qmp(id)).execute<{ status: string }>('query-status', undefined, 3000)
        ).status;
      } catch {
        hypervisorStatus = null;
      }
    }
    await this.noteObservedState(guest, hypervisorStatus);
    return {
      id,
      name: guest.spec.name,
      status: runStateOf(guest.desired, guest.everStarted, alive, hypervisorStatus),
      spec: guest.spec,
      hypervisorStatus,
      pid: alive ? (run?.pid ?? null) : null,
      heartbeat: guest.everStarted ? await readHeartbeat(this.serialLogPath(id)) : null,
    };
  }

  /** Keeps the desired state in step with what migrations did, so that a restarted agent does the right thing. */
  private async noteObservedState(guest: StoredGuest, hypervisorStatus: string | null): Promise<void> {
    let desired = guest.desired;
    if (guest.desired === 'incoming' && hypervisorStatus === 'running') desired = 'running';
    // A source that handed its guest over must never be restarted on its own.
    if (guest.migration?.role === 'source' && hypervisorStatus === 'postmigrate') desired = 'paused';
    if (desired !== guest.desired) {
      guest.desired = desired;
      await this.store.save(guest);
    }
  }

  private async finish(guest: StoredGuest, status: MigrationStatus): Promise<MigrationStatus> {
    const record = guest.migration;
    if (record === null) return status;
    if (record.final !== null) return record.final;
    const id = guest.spec.id;
    record.final = this.decorate(record, status);
    if (record.role === 'source' && status.status === 'completed') guest.desired = 'paused';
    await this.store.save(guest);
    this.options.log(
      `guest ${id}: migration ${record.migrationId} (${record.role}) ${status.status}` +
        (status.errorDesc ? `: ${status.errorDesc}` : ''),
    );
    if (record.role === 'destination' && record.nbdUri !== null && status.status === 'completed') {
      // The source completed its mirrors before the switch-over: nobody writes to the exports any more.
      await this.stopNbdServer(id);
    }
    if (
      record.role === 'source' &&
      record.block &&
      record.block.phase !== 'switched' &&
      (await this.alive(id))
    ) {
      // Failed or cancelled with mirrors still running: the source keeps its own disks only.
      await this.teardownMirrors(id).catch((error) =>
        this.options.log(`guest ${id}: cannot stop the disk mirrors: ${errorMessage(error)}`),
      );
    }
    return record.final;
  }

  /** Adds what the record knows (times, TLS, disk figures) to a status. */
  private decorate(record: MigrationRecord, status: MigrationStatus): MigrationStatus {
    const source = record.role === 'source';
    const disks =
      source && record.block
        ? {
            diskTransferredBytes: status.diskTransferredBytes ?? 0,
            diskTotalBytes: status.diskTotalBytes ?? 0,
            diskRemainingBytes: status.diskRemainingBytes ?? 0,
            diskReady: status.diskReady ?? false,
          }
        : noDiskFigures;
    return {
      ...status,
      ...disks,
      setupAt: source ? (record.setupAt ?? null) : null,
      startedAt: source ? (record.startedAt ?? null) : null,
      tls: record.tls ?? false,
      postCopyStarted: record.postCopyStarted ?? false,
    };
  }

  /** The guest's migration as the rules see it (guest-rules MigrationView). */
  private async migrationView(id: string): Promise<MigrationView> {
    const status = await this.migrationStatus(id);
    const record = this.guest(id).migration;
    return { record, status: status.status, postCopyStarted: record?.postCopyStarted ?? false };
  }

  private memoryHolders(): MemoryHolder[] {
    return [...this.running.entries()]
      .filter(([, run]) => run.exitReason === null)
      .map(([id]) => ({ id, memoryMb: this.guests.get(id)?.spec.memoryMb ?? 0 }));
  }

  private localDiskDir(guestId: string): string {
    return path.join(this.store.dir(guestId), 'disks');
  }

  private localDiskPath(guestId: string, diskId: string): string {
    return path.join(this.localDiskDir(guestId), `${diskId}.qcow2`);
  }

  /** Records of a guest's disk exports and imports (pids, uris, qemu-nbd logs). */
  private diskCopyDir(guestId: string): string {
    return path.join(this.store.dir(guestId), 'disk-copy');
  }

  /**
   * Starts the NBD server on a free port of the listen address and returns it (QEMU has no query for it:
   * see qemu-block.ts). With TLS it takes the incoming QEMU's server credentials and, when the source
   * host is known, its authz object: only the source's certificate may write to the disks.
   */
  private async startNbdServer(id: string, host: string, tls: boolean, authz: boolean): Promise<number> {
    const run = this.running.get(id);
    if (run === undefined) throw new Error('no QEMU process');
    const qmp = await this.qmp(id);
    const before = await processListeningPorts(run.pid);
    await qmp.execute('nbd-server-start', {
      addr: { type: 'inet', data: { host, port: '0' } },
      ...(tls ? { 'tls-creds': TLS_OBJECT_ID.server } : {}),
      ...(tls && authz ? { 'tls-authz': TLS_AUTHZ_ID } : {}),
    });
    const added = [...(await processListeningPorts(run.pid))].filter((port) => !before.has(port));
    if (added.length !== 1) {
      throw new Error(
        `cannot tell which port the NBD server listens on (new listening ports: ${added.join(', ') || 'none'})`,
      );
    }
    return added[0]!;
  }

  private async stopNbdServer(id: string): Promise<void> {
    if (!(await this.alive(id))) return;
    try {
      await (await this.qmp(id)).execute('nbd-server-stop');
      this.options.log(`guest ${id}: NBD server stopped`);
    } catch {
      // Not running (any more): nothing to stop.
    }
  }

  /** The outgoing side's TLS client object, capabilities and parameters, all set for this migration. */
  private async configureOutgoing(
    id: string,
    request: StartMigrationRequest,
    block: boolean,
    tlsHostname: string | null,
  ): Promise<void> {
    const qmp = await this.qmp(id);
    if (request.tls) await this.ensureTlsClient(id);
    await qmp.execute('migrate-set-capabilities', {
      capabilities: [
        { capability: 'events', state: true },
        { capability: 'postcopy-ram', state: request.postCopy },
        { capability: 'auto-converge', state: request.autoConverge },
        { capability: 'xbzrle', state: request.xbzrle ?? false },
        // Block migration: stop before the switch-over so that the mirrors complete first.
        { capability: 'pause-before-switchover', state: block },
      ],
    });
    // QEMU treats max-bandwidth 0 as "no limit", as the contract does. Every parameter is set, so
    // that what an earlier migration of this QEMU set does not leak into this one; the cap covers
    // post-copy too (max-postcopy-bandwidth).
    await qmp.execute('migrate-set-parameters', {
      'downtime-limit': request.downtimeLimitMs,
      ...bandwidthParameters(request.maxBandwidthBytes),
      'cpu-throttle-initial': request.cpuThrottleInitial ?? THROTTLE_DEFAULTS.initial,
      'cpu-throttle-increment': request.cpuThrottleIncrement ?? THROTTLE_DEFAULTS.increment,
      'max-cpu-throttle': request.maxCpuThrottle ?? THROTTLE_DEFAULTS.max,
      ...outgoingTlsParameters(request.tls ? tlsHostname : null),
    });
  }

  /**
   * The source's client credentials, added at runtime once (QEMU keeps them for the next migration). A
   * QEMU holding them from another directory (an older agent's shared pair) gets this host's instead.
   */
  private async ensureTlsClient(id: string): Promise<void> {
    const qmp = await this.qmp(id);
    const objects = await qmp.execute<{ name: string }[]>('qom-list', { path: '/objects' });
    if (objects.some((object) => object.name === TLS_OBJECT_ID.client)) {
      const dir = await qmp
        .execute<string>('qom-get', { path: `/objects/${TLS_OBJECT_ID.client}`, property: 'dir' })
        .catch(() => null);
      if (dir === this.tls.dir) return;
      await qmp.execute('object-del', { id: TLS_OBJECT_ID.client });
    }
    await qmp.execute('object-add', tlsClientObjectArgs(this.tls.dir));
  }

  /** Whom an incoming TLS migration admits, for the log. */
  private admitted(request: PrepareIncomingRequest): string {
    return request.sourceHost === undefined
      ? 'any certificate of the CA (no sourceHost)'
      : this.tls.peerDn(request.sourceHost);
  }

  private async diskFigures(
    id: string,
    block: NonNullable<MigrationRecord['block']>,
  ): Promise<
    Pick<MigrationStatus, 'diskTransferredBytes' | 'diskTotalBytes' | 'diskRemainingBytes' | 'diskReady'>
  > {
    if (block.phase === 'switched') {
      const copied = block.copiedBytes ?? 0;
      return { diskTransferredBytes: copied, diskTotalBytes: copied, diskRemainingBytes: 0, diskReady: true };
    }
    const jobs = mirrorJobs(
      block.disks,
      await (await this.qmp(id)).execute<BlockJobInfo[]>('query-block-jobs'),
    );
    return figuresOf(jobs);
  }

  /** Block migration, step 1 (under blockWork): an NBD client node and a mirror job per local disk. */
  private async startMirrors(id: string, target: NbdAddress, request: StartMigrationRequest): Promise<void> {
    const guest = this.guest(id);
    const record = guest.migration!;
    const block = record.block!;
    try {
      const qmp = await this.qmp(id);
      await this.teardownMirrors(id);
      const tlsHostname = request.tlsHostname ?? target.host;
      for (const [index, diskId] of block.disks.entries()) {
        await qmp.execute('blockdev-add', {
          driver: 'nbd',
          'node-name': mirrorTargetNode(index),
          server: { type: 'inet', host: target.host, port: String(target.port) },
          export: diskId,
          ...(request.tls ? { 'tls-creds': TLS_OBJECT_ID.client, 'tls-hostname': tlsHostname } : {}),
        });
        record.startedAt ??= Date.now();
        await qmp.execute('blockdev-mirror', {
          'job-id': mirrorJobId(index),
          device: `drive-${diskId}`,
          target: mirrorTargetNode(index),
          sync: 'full',
          // Kept once ended, so that their outcome can be read; the driver dismisses them.
          'auto-dismiss': false,
          ...(request.maxBandwidthBytes > 0 ? { speed: request.maxBandwidthBytes } : {}),
        });
      }
      await this.store.save(guest);
    } catch (error) {
      block.error = `cannot mirror the local disks: ${errorMessage(error)}`;
      await this.store.save(guest);
      await this.teardownMirrors(id).catch(() => undefined);
      await this.finish(guest, {
        ...noMigrationStatus(record.migrationId),
        status: 'failed',
        errorDesc: block.error,
      });
      return;
    }
    void this.kickBlock(id);
  }

  /** Runs the next step of a block migration, at most one at a time per guest; extra kicks coalesce. */
  private kickBlock(id: string): Promise<void> {
    if (this.queuedBlockSteps.has(id)) return Promise.resolve();
    this.queuedBlockSteps.add(id);
    return this.blockWork
      .run(id, async () => {
        this.queuedBlockSteps.delete(id);
        await this.advanceBlock(id);
      })
      .catch((error) => this.options.log(`guest ${id}: block migration step failed: ${errorMessage(error)}`));
  }

  /**
   * Block migration, the steps after the mirrors started (under blockWork; idempotent, so any event or
   * look may call it): once every mirror is READY, `migrate`; at pre-switchover (guest paused),
   * complete the mirrors with a soft block-job-cancel (copies what is still dirty, no pivot), drop the
   * NBD client nodes, then `migrate-continue`. A mirror that fails fails the migration.
   */
  private async advanceBlock(id: string): Promise<void> {
    const guest = this.guests.get(id);
    const record = guest?.migration;
    if (guest === undefined || !record || record.role !== 'source' || record.final !== null) return;
    if (!(await this.alive(id))) return;
    const qmp = await this.qmp(id);
    const block = record.block ?? null;
    if (block === null) {
      // Only block migrations pause before the switch-over; never leave a guest stuck there.
      const info = await qmp.execute<QueryMigrate>('query-migrate');
      if (info.status === 'pre-switchover')
        await qmp.execute('migrate-continue', { state: 'pre-switchover' });
      return;
    }
    if (block.error !== null || block.phase === 'switched') return;
    const jobs = mirrorJobs(block.disks, await qmp.execute<BlockJobInfo[]>('query-block-jobs'));
    if (block.phase === 'mirroring') {
      if (jobs.failure !== null) {
        return this.failBlock(
          guest,
          `mirror of disk '${jobs.failure.diskId}' failed: ${jobs.failure.error}`,
          false,
        );
      }
      if (!jobs.ready) return;
      // A migration in progress here can only be ours, issued before an agent restart.
      const info = await qmp.execute<QueryMigrate>('query-migrate');
      if (!migrationInProgress(info.status)) {
        try {
          await qmp.execute('migrate', { uri: record.uri });
        } catch (error) {
          return this.failBlock(guest, `migrate failed: ${errorMessage(error)}`, false);
        }
      }
      block.phase = 'migrating';
      await this.store.save(guest);
      this.options.log(
        `guest ${id}: local disks in step; RAM copy of migration ${record.migrationId} started`,
      );
      return;
    }
    if (jobs.failure !== null) {
      return this.failBlock(
        guest,
        `mirror of disk '${jobs.failure.diskId}' failed: ${jobs.failure.error}`,
        true,
      );
    }
    const info = await qmp.execute<QueryMigrate>('query-migrate');
    if (info.status === 'pre-switchover') await this.switchOver(guest, jobs);
  }

  private async switchOver(guest: StoredGuest, jobs: MirrorJobs): Promise<void> {
    const id = guest.spec.id;
    const record = guest.migration!;
    const block = record.block!;
    const qmp = await this.qmp(id);
    for (const job of jobs.jobs) {
      if (job !== null && job.status !== 'concluded') {
        await qmp.execute('block-job-cancel', { device: job.device, force: false });
      }
    }
    const timeoutMs = this.options.mirrorCompleteTimeoutMs ?? 60_000;
    const deadline = Date.now() + timeoutMs;
    let done = mirrorJobs(block.disks, await qmp.execute<BlockJobInfo[]>('query-block-jobs'));
    while (!done.jobs.every((job) => job === null || job.status === 'concluded')) {
      if (Date.now() >= deadline) {
        return this.failBlock(
          guest,
          `the disk mirrors did not complete within ${timeoutMs} ms at switch-over`,
          true,
        );
      }
      await new Promise((resolve) => setTimeout(resolve, 20));
      done = mirrorJobs(block.disks, await qmp.execute<BlockJobInfo[]>('query-block-jobs'));
    }
    if (done.failure !== null) {
      return this.failBlock(
        guest,
        `mirror of disk '${done.failure.diskId}' failed: ${done.failure.error}`,
        true,
      );
    }
    block.copiedBytes = done.transferredBytes;
    await this.teardownMirrors(id);
    block.phase = 'switched';
    await this.store.save(guest);
    await qmp.execute('migrate-continue', { state: 'pre-switchover' });
    this.options.log(`guest ${id}: disk mirrors completed (${done.transferredBytes} bytes); switching over`);
  }

  /** Fails a block migration: cancels the RAM copy if it runs (the source resumes), stops the mirrors. */
  private async failBlock(guest: StoredGuest, message: string, migrateIssued: boolean): Promise<void> {
    const id = guest.spec.id;
    const record = guest.migration!;
    this.failingBlock.add(id);
    try {
      record.block!.error = message;
      await this.store.save(guest);
      const qmp = await this.qmp(id);
      if (migrateIssued) {
        await qmp.execute('migrate_cancel').catch(() => undefined);
        const deadline = Date.now() + 10_000;
        while (Date.now() < deadline) {
          const info = await qmp.execute<QueryMigrate>('query-migrate');
          if (!migrationInProgress(info.status)) break;
          await new Promise((resolve) => setTimeout(resolve, 50));
        }
      }
      await this.teardownMirrors(id).catch((error) =>
        this.options.log(`guest ${id}: cannot stop the disk mirrors: ${errorMessage(error)}`),
      );
    } finally {
      this.failingBlock.delete(id);
    }
    await this.finish(guest, {
      ...noMigrationStatus(record.migrationId),
      status: 'failed',
      errorDesc: message,
    });
  }

  /** Cancels (force) and dismisses this driver's mirror jobs and deletes their NBD client nodes. */
  private async teardownMirrors(id: string): Promise<void> {
    const qmp = await this.qmp(id);
    const ours = async () =>
      (await qmp.execute<BlockJobInfo[]>('query-block-jobs')).filter((job) =>
        job.device.startsWith('vmmig-mirror-'),
      );
    let jobs = await ours();
    for (const job of jobs) {
      if (job.status !== 'concluded' && job.status !== 'aborting') {
        await qmp.execute('block-job-cancel', { device: job.device, force: true }).catch(() => undefined);
      }
    }
    const deadline = Date.now() + 10_000;
    while (jobs.some((job) => job.status !== 'concluded') && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 20));
      jobs = await ours();
    }
    for (const job of jobs) await qmp.execute('job-dismiss', { id: job.device }).catch(() => undefined);
    const nodes = await qmp.execute<{ 'node-name'?: string }[]>('query-named-block-nodes', { flat: true });
    for (const node of nodes) {
      const name = node['node-name'];
      if (name?.startsWith('vmmig-nbd-')) {
        await qmp.execute('blockdev-del', { 'node-name': name }).catch(() => undefined);
      }
    }
  }

  private async waitForStatus(
    id: string,
    done: (status: MigrationStatus['status']) => boolean,
    timeoutMs: number,
  ): Promise<MigrationStatus> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const status = await this.migrationStatus(id);
      if (done(status.status) || Date.now() >= deadline) return status;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  private async assertOutgoingActive(id: string): Promise<void> {
    const guest = this.guest(id);
    const status = await this.migrationStatus(id);
    if (guest.migration?.role !== 'source' || !isMigrationActive(status.status)) {
      throw conflict('no_active_migration', `guest '${id}' has no outgoing migration in progress`);
    }
  }

  private assertNetworks(spec: GuestSpec): void {
    const missing = spec.networks.filter((n) => !this.options.identity.networks.includes(n.name));
    if (missing.length > 0) {
      throw conflict(
        'network_unavailable',
        `this host has no network ${missing.map((n) => `'${n.name}'`).join(', ')} (it has ${this.options.identity.networks.join(', ')})`,
        'networks',
      );
    }
  }

  private sharedDiskPath(guestId: string, diskId: string): string {
    return path.join(this.options.identity.sharedStoragePath, guestId, `${diskId}.qcow2`);
  }

  private async resolveDisks(spec: GuestSpec, create: boolean): Promise<QemuDisk[]> {
    const disks: QemuDisk[] = [];
    for (const disk of spec.disks) {
      const file =
        disk.storage === 'shared'
          ? this.sharedDiskPath(spec.id, disk.id)
          : this.localDiskPath(spec.id, disk.id);
      if (create && (await ensureQcow2(file, disk.sizeMb, this.options.qemuImgBinary))) {
        this.options.log(`guest ${spec.id}: created ${disk.storage} disk ${file}`);
      }
      const { cache, fellBack } = await effectiveCacheMode(disk.cache, path.dirname(file));
      if (fellBack) {
        this.options.log(
          `guest ${spec.id}: ${path.dirname(file)} does not support O_DIRECT; disk ${disk.id} uses cache=${cache} instead of ${disk.cache}`,
        );
      }
      disks.push({ id: disk.id, path: file, cache });
    }
    return disks;
  }

  private serialLogPath(id: string): string {
    return path.join(this.store.dir(id), 'serial.log');
  }

  /** The host end of the guest agent channel (qemu-command.ts guestAgentChannelArguments). */
  private guestAgentSocketPath(id: string): string {
    return this.socketPath(id, 'qga');
  }

  private qmpSocketPath(id: string): string {
    return this.socketPath(id, 'qmp');
  }

  /** `<guest dir>/<name>.sock`, or a stable name in the temp dir when that is too long for a unix socket. */
  private socketPath(id: string, name: string): string {
    const inDir = path.join(this.store.dir(id), `${name}.sock`);
    if (inDir.length <= MAX_SOCKET_PATH) return inDir;
    const digest = createHash('sha256').update(inDir).digest('hex').slice(0, 20);
    return path.join(os.tmpdir(), `vmmig-${name}-${digest}.sock`);
  }

  private async launch(guest: StoredGuest, incoming: boolean): Promise<void> {
    const id = guest.spec.id;
    const dir = this.store.dir(id);
    const kernelPath = path.join(this.options.guestImageDir, 'vmlinuz');
    const initrdPath = path.join(this.options.guestImageDir, 'initramfs.cpio.gz');
    if (!(await fileExists(kernelPath)) || !(await fileExists(initrdPath))) {
      throw new AgentFailure(
        503,
        'guest_image_missing',
        `no test guest image in ${this.options.guestImageDir}: run scripts/build-guest-image.sh`,
      );
    }
    await this.store.save(guest);
    const socketPath = this.qmpSocketPath(id);
    await rm(socketPath, { force: true });
    const args = qemuArguments({
      spec: guest.spec,
      kernelPath,
      initrdPath,
      serialLogPath: this.serialLogPath(id),
      qmpSocketPath: socketPath,
      guestAgentSocketPath: this.guestAgentSocketPath(id),
      pidFilePath: path.join(dir, 'qemu.pid'),
      disks: await this.resolveDisks(guest.spec, !incoming),
      incoming,
      tlsServerDir: incoming && guest.migration?.tls ? this.tls.dir : null,
    });
    const logPath = path.join(dir, 'qemu.log');
    const spawned = await spawnQemu(this.qemuBinary, args, logPath);
    const run: Running = { pid: spawned.pid, qmp: null, connecting: null, exitReason: null };
    this.running.set(id, run);
    void spawned.exited.then((reason) => {
      run.exitReason = `QEMU exited (${reason})`;
      if (this.running.get(id) === run) this.options.log(`guest ${id}: QEMU ${run.pid} exited (${reason})`);
    });
    guest.pid = spawned.pid;
    guest.everStarted = true;
    if (!incoming) guest.desired = 'running';
    await this.store.save(guest);
    try {
      await Promise.race([
        this.qmp(id),
        spawned.exited.then(async (reason) => {
          const tail = (await readFile(logPath, 'utf8').catch(() => ''))
            .trim()
            .split('\n')
            .slice(-3)
            .join(' | ');
          throw new Error(`QEMU exited at start (${reason}): ${tail}`);
        }),
      ]);
    } catch (error) {
      await this.terminate(id);
      throw new AgentFailure(500, 'qemu_start_failed', `guest ${id}: ${errorMessage(error)}`);
    }
    this.options.log(
      `guest ${id}: QEMU ${spawned.pid} started${incoming ? ' for an incoming migration' : ''}`,
    );
  }

  private async alive(id: string): Promise<boolean> {
    const run = this.running.get(id);
    if (run === undefined || run.exitReason !== null) return false;
    return isGuestQemu(run.pid, this.store.dir(id));
  }

  /** query-migrate; a source caught between `completed` and its figures is asked again, for a moment at most. */
  private async queryMigrate(qmp: QmpClient, role: MigrationRecord['role']): Promise<QueryMigrate> {
    let info = await qmp.execute<QueryMigrate>('query-migrate');
    for (let i = 0; role === 'source' && completionFiguresPending(info) && i < FIGURES_RETRIES; i++) {
      await new Promise((resolve) => setTimeout(resolve, FIGURES_RETRY_MS));
      info = await qmp.execute<QueryMigrate>('query-migrate');
    }
    return info;
  }

  private async qmp(id: string): Promise<QmpClient> {
    const run = this.running.get(id);
    if (run === undefined) throw conflict('guest_not_running', `guest '${id}' has no QEMU process`);
    if (run.qmp !== null && !run.qmp.closed) return run.qmp;
    // QEMU serves one QMP client per socket: concurrent callers must share one connection attempt.
    run.connecting ??= (async () => {
      if (!(await this.alive(id))) throw conflict('guest_not_running', `guest '${id}' has no QEMU process`);
      const client = await QmpClient.connect(this.qmpSocketPath(id), { connectTimeoutMs: 10_000 });
      client.onEvent((event) => void this.onEvent(id, event));
      run.qmp = client;
      return client;
    })().finally(() => {
      run.connecting = null;
    });
    return run.connecting;
  }

  onMigrationEvent(listener: (guestId: string) => void): void {
    this.migrationListeners.push(listener);
  }

  private async onEvent(id: string, event: QmpEvent): Promise<void> {
    if (event.event === 'MIGRATION') {
      const status = String(event.data?.status ?? '');
      if (status === 'pre-switchover') await this.kickBlock(id);
      if (status === 'completed' || status === 'failed' || status === 'cancelled') {
        await this.migrationStatus(id).catch(() => undefined);
      }
      for (const listener of this.migrationListeners) listener(id);
    } else if (event.event.startsWith('BLOCK_JOB_')) {
      await this.kickBlock(id);
    } else if (event.event === 'SHUTDOWN' || event.event === 'GUEST_PANICKED') {
      this.options.log(`guest ${id}: ${event.event} ${JSON.stringify(event.data ?? {})}`);
    }
  }

  /** After a SIGKILL: waits for the process to go and forgets it. */
  private async reap(id: string): Promise<void> {
    const run = this.running.get(id);
    if (run === undefined) return;
    if (!(await waitForExit(run.pid, 5000)))
      this.options.log(`guest ${id}: QEMU ${run.pid} is still there 5 s after SIGKILL`);
    await run.qmp?.close();
    if (this.running.get(id) === run) this.running.delete(id);
    await rm(this.qmpSocketPath(id), { force: true });
  }

  /** quit over QMP, then SIGTERM, then SIGKILL; the desired state is left as it is. */
  private async terminate(id: string): Promise<void> {
    const run = this.running.get(id);
    if (run === undefined) return;
    const grace = this.options.stopGraceMs ?? 5000;
    if (await this.alive(id)) {
      try {
        const qmp = await this.qmp(id);
        await qmp.execute('quit', undefined, 2000).catch(() => undefined);
      } catch {
        signal(run.pid, 'SIGTERM');
      }
      if (!(await waitForExit(run.pid, grace))) {
        this.options.log(`guest ${id}: QEMU ${run.pid} ignored quit for ${grace} ms; killing it`);
        signal(run.pid, 'SIGKILL');
        await waitForExit(run.pid, 2000);
      }
    }
    await run.qmp?.close();
    this.running.delete(id);
    await rm(this.qmpSocketPath(id), { force: true });
  }
}

const IN_PROGRESS = new Set([
  'setup',
  'active',
  'pre-switchover',
  'device',
  'wait_unplug',
  'postcopy-active',
  'postcopy-paused',
  'postcopy-recover',
  'cancelling',
]);

function migrationInProgress(status: string | undefined): boolean {
  return status !== undefined && IN_PROGRESS.has(status);
}

function figuresOf(
  jobs: MirrorJobs,
): Pick<MigrationStatus, 'diskTransferredBytes' | 'diskTotalBytes' | 'diskRemainingBytes' | 'diskReady'> {
  return {
    diskTransferredBytes: jobs.transferredBytes,
    diskTotalBytes: jobs.totalBytes,
    diskRemainingBytes: Math.max(0, jobs.totalBytes - jobs.transferredBytes),
    diskReady: jobs.ready && jobs.failure === null,
  };
}

function resultOf(record: MigrationRecord): PrepareIncomingResult {
  return { migrationId: record.migrationId, uri: record.uri, nbdUri: record.nbdUri };
}

/** 400 for a listen address that binds every interface: listeners bind the migration address only. */
function assertBindAddress(address: string, field: string): void {
  if (isWildcardAddress(address)) {
    throw new AgentFailure(
      400,
      'invalid_request',
      `${field}: '${address}' binds every interface; give the host's migration address (MIGRATION_ADDRESS)`,
      field,
    );
  }
}

/** With TLS and the source named, only the source host's certificate is admitted (QEMU tls-authz). */
function admitsOnlySource(request: PrepareIncomingRequest): boolean {
  return request.tls && request.sourceHost !== undefined;
}
