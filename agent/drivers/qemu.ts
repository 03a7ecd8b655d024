import { createHash } from 'node:crypto';
import { readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type {
  CleanupRequest,
  GuestSpec,
  GuestState,
  HostFacts,
  MigrationParameters,
  MigrationStatus,
  PrepareIncomingRequest,
  PrepareIncomingResult,
  StartMigrationRequest,
} from '../../domain/agent-contract.ts';
import type { AgentIdentity, GuestUsage, HostUsage, HypervisorDriver } from '../driver.ts';
import { AgentFailure, conflict, guestNotFound } from '../errors.ts';
import type { PlatformFacts } from '../facts.ts';
import {
  assertMigrationSupported,
  assertSafeSpec,
  decideCleanup,
  decideDefine,
  decidePrepareIncoming,
  decideStartMigration,
  hostPort,
  isMigrationActive,
  isMigrationFinished,
  type MigrationRecord,
  noMigrationStatus,
} from '../guest-rules.ts';
import { errorMessage, type Logger } from '../log.ts';
import { cpuPercent, type ProcessSample, sampleProcess } from '../proc-stat.ts';
import { QmpClient, type QmpEvent } from '../qmp.ts';
import { effectiveCacheMode, ensureQcow2, fileExists } from './disk-images.ts';
import { GuestStore, type StoredGuest } from './guest-store.ts';
import { type QemuDisk, qemuArguments } from './qemu-command.ts';
import { incomingPort, normaliseQueryMigrate, type QueryMigrate, runStateOf } from './qemu-migration.ts';
import { isGuestQemu, signal, spawnQemu, waitForExit } from './qemu-process.ts';
import { readHeartbeat } from './serial-heartbeat.ts';

const MIB = 1024 * 1024;
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
  /** How long QEMU may take to exit after `quit` before it is killed. */
  stopGraceMs?: number;
}

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

  constructor(private readonly options: QemuDriverOptions) {
    this.store = new GuestStore(options.agentDir);
    this.qemuBinary = options.qemuBinary ?? 'qemu-system-x86_64';
  }

  async init(): Promise<void> {
    for (const id of await this.store.ids()) {
      const guest = await this.store.load(id);
      if (guest === null) continue;
      this.guests.set(id, guest);
      if (guest.pid !== null && (await isGuestQemu(guest.pid, this.store.dir(id)))) {
        this.running.set(id, { pid: guest.pid, qmp: null, connecting: null, exitReason: null });
        try {
          await this.qmp(id);
          this.options.log(`reattached to QEMU ${guest.pid} of guest ${id}`);
        } catch (error) {
          this.options.log(
            `guest ${id}: QEMU ${guest.pid} is alive but QMP does not answer: ${errorMessage(error)}`,
          );
        }
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
    const committedMb = [...this.guests.values()]
      .filter((guest) => this.running.has(guest.spec.id))
      .reduce((sum, guest) => sum + guest.spec.memoryMb, 0);
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
    };
  }

  async listGuests(): Promise<GuestState[]> {
    return Promise.all([...this.guests.keys()].map((id) => this.view(id)));
  }

  async getGuest(id: string): Promise<GuestState | null> {
    return this.guests.has(id) ? this.view(id) : null;
  }

  async defineGuest(spec: GuestSpec): Promise<GuestState> {
    assertSafeSpec(spec);
    const existing = this.guests.get(spec.id);
    if (decideDefine(existing?.spec ?? null, spec) === 'create') {
      this.assertNetworks(spec);
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
    if (state.status === 'running') return state;
    if (state.status === 'paused' || state.status === 'incoming') {
      throw conflict(
        'guest_not_startable',
        `guest '${id}' is ${state.status}; use resume or wait for the migration`,
      );
    }
    await this.terminate(id);
    guest.migration = null;
    await this.launch(guest, false);
    return this.view(id);
  }

  async stopGuest(id: string): Promise<GuestState> {
    const guest = this.guest(id);
    const status = await this.migrationStatus(id);
    if (isMigrationActive(status.status)) {
      throw conflict(
        'migration_in_progress',
        `cannot stop guest '${id}' while its migration is ${status.status}`,
      );
    }
    guest.desired = 'stopped';
    await this.store.save(guest);
    await this.terminate(id);
    return this.view(id);
  }

  async resumeGuest(id: string): Promise<GuestState> {
    const guest = this.guest(id);
    const state = await this.view(id);
    if (state.status === 'running') return state;
    if (state.status !== 'paused') {
      throw conflict('guest_not_paused', `guest '${id}' is ${state.status}; only a paused guest resumes`);
    }
    const status = await this.migrationStatus(id);
    if (status.status === 'postcopy-active') {
      throw conflict('postcopy_active', `guest '${id}' runs on the destination during post-copy`);
    }
    await (await this.qmp(id)).execute('cont');
    // Resuming a source after its migration completed is a rollback: the guest is back here.
    if (guest.migration?.role === 'source' && status.status === 'completed') guest.migration = null;
    guest.desired = 'running';
    await this.store.save(guest);
    this.options.log(`resumed guest ${id}`);
    return this.view(id);
  }

  async destroyGuest(id: string): Promise<boolean> {
    if (!this.guests.has(id)) return false;
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
    assertMigrationSupported(request.spec, request.tls);
    const existing = this.guests.get(id);
    const decision = decidePrepareIncoming(
      existing === undefined
        ? null
        : { spec: existing.spec, migration: existing.migration, alive: await this.alive(id) },
      request,
    );
    if (decision === 'existing' && existing?.migration) return resultOf(existing.migration);
    this.assertNetworks(request.spec);
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
      },
      pid: null,
    };
    this.guests.set(id, guest);
    try {
      await this.launch(guest, true);
      const qmp = await this.qmp(id);
      await qmp.execute('migrate-set-capabilities', {
        capabilities: [
          { capability: 'events', state: true },
          { capability: 'postcopy-ram', state: request.postCopy },
        ],
      });
      await qmp.execute('migrate-incoming', { uri: `tcp:${hostPort(request.listenAddress, 0)}` });
      const port = incomingPort(await qmp.execute<QueryMigrate>('query-migrate'));
      if (port === null) throw new Error('QEMU did not report the port it listens on');
      guest.migration!.uri = `tcp:${hostPort(request.listenAddress, port)}`;
      await this.store.save(guest);
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
    this.options.log(
      `guest ${id}: incoming migration ${request.migrationId} listens on ${guest.migration!.uri}`,
    );
    return resultOf(guest.migration!);
  }

  async startMigration(id: string, request: StartMigrationRequest): Promise<MigrationStatus> {
    const guest = this.guest(id);
    const current = await this.migrationStatus(id);
    const runState = (await this.view(id)).status;
    if (
      decideStartMigration({ record: guest.migration, status: current.status }, runState, request) ===
      'current'
    ) {
      return current;
    }
    assertMigrationSupported(guest.spec, request.tls);
    const qmp = await this.qmp(id);
    await qmp.execute('migrate-set-capabilities', {
      capabilities: [
        { capability: 'events', state: true },
        { capability: 'postcopy-ram', state: request.postCopy },
        { capability: 'auto-converge', state: request.autoConverge },
      ],
    });
    // QEMU treats max-bandwidth 0 as "no limit", as the contract does.
    await qmp.execute('migrate-set-parameters', {
      'downtime-limit': request.downtimeLimitMs,
      'max-bandwidth': request.maxBandwidthBytes,
    });
    guest.migration = {
      migrationId: request.migrationId,
      role: 'source',
      uri: request.uri,
      postCopy: request.postCopy,
      nbdUri: null,
      final: null,
    };
    await this.store.save(guest);
    try {
      await qmp.execute('migrate', { uri: request.uri });
    } catch (error) {
      guest.migration.final = {
        ...noMigrationStatus(request.migrationId),
        status: 'failed',
        errorDesc: errorMessage(error),
      };
      await this.store.save(guest);
    }
    this.options.log(`guest ${id}: migration ${request.migrationId} started to ${request.uri}`);
    return this.migrationStatus(id);
  }

  async migrationStatus(id: string): Promise<MigrationStatus> {
    const guest = this.guest(id);
    const record = guest.migration;
    if (record === null) return noMigrationStatus();
    if (record.final !== null) return record.final;
    if (!(await this.alive(id))) {
      const exit = this.running.get(id)?.exitReason ?? 'QEMU is not running';
      return this.finish(guest, {
        ...noMigrationStatus(record.migrationId),
        status: 'failed',
        errorDesc: exit,
      });
    }
    let info: QueryMigrate;
    try {
      info = await (await this.qmp(id)).execute<QueryMigrate>('query-migrate');
    } catch (error) {
      if (await this.alive(id)) throw error;
      return this.migrationStatus(id);
    }
    const status = normaliseQueryMigrate(info, record.migrationId);
    if (record.role === 'destination' && status.status === 'none') return { ...status, status: 'setup' };
    if (isMigrationFinished(status.status)) return this.finish(guest, status);
    return status;
  }

  async setMigrationParameters(id: string, parameters: MigrationParameters): Promise<MigrationStatus> {
    await this.assertOutgoingActive(id);
    const args: Record<string, number> = {};
    if (parameters.downtimeLimitMs !== undefined) args['downtime-limit'] = parameters.downtimeLimitMs;
    if (parameters.maxBandwidthBytes !== undefined) args['max-bandwidth'] = parameters.maxBandwidthBytes;
    if (parameters.cpuThrottleIncrement !== undefined)
      args['cpu-throttle-increment'] = parameters.cpuThrottleIncrement;
    if (Object.keys(args).length > 0) await (await this.qmp(id)).execute('migrate-set-parameters', args);
    return this.migrationStatus(id);
  }

  async startPostCopy(id: string): Promise<MigrationStatus> {
    const guest = this.guest(id);
    const status = await this.migrationStatus(id);
    if (
      guest.migration?.role === 'source' &&
      (status.status === 'postcopy-active' || isMigrationFinished(status.status))
    ) {
      return status;
    }
    await this.assertOutgoingActive(id);
    if (!guest.migration?.postCopy) {
      throw conflict(
        'postcopy_not_enabled',
        'post-copy was not enabled when this migration started',
        'postCopy',
      );
    }
    await (await this.qmp(id)).execute('migrate-start-postcopy');
    this.options.log(`guest ${id}: switched migration ${guest.migration.migrationId} to post-copy`);
    return this.waitForStatus(id, (s) => s !== 'active', 2000);
  }

  async cancelMigration(id: string): Promise<MigrationStatus> {
    const guest = this.guest(id);
    const status = await this.migrationStatus(id);
    if (guest.migration?.role !== 'source' || !isMigrationActive(status.status)) return status;
    if (status.status === 'postcopy-active') {
      throw conflict(
        'postcopy_active',
        'a migration in post-copy cannot be cancelled: the guest runs on the destination',
      );
    }
    await (await this.qmp(id)).execute('migrate_cancel');
    this.options.log(`guest ${id}: cancelled migration ${guest.migration.migrationId}`);
    return this.waitForStatus(id, (s) => isMigrationFinished(s), 5000);
  }

  async cleanup(id: string, request: CleanupRequest): Promise<{ cleaned: boolean }> {
    const guest = this.guests.get(id);
    const current =
      guest === undefined
        ? null
        : { record: guest.migration, status: (await this.migrationStatus(id)).status };
    if (decideCleanup(current, request) === 'nothing') return { cleaned: false };
    await this.destroyGuest(id);
    this.options.log(`cleaned ${request.role} guest ${id} of migration ${request.migrationId}`);
    return { cleaned: true };
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
    await Promise.all(ids.map((id) => this.terminate(id)));
  }

  async detach(): Promise<void> {
    for (const run of this.running.values()) await run.qmp?.close();
    this.running.clear();
  }

  async fence(reason: string): Promise<void> {
    this.options.log(`fencing: stopping every guest (${reason})`);
    for (const guest of this.guests.values()) {
      guest.desired = 'stopped';
      await this.store.save(guest);
    }
    await this.shutdown();
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
    if (guest.migration !== null && guest.migration.final === null) {
      guest.migration.final = status;
      if (guest.migration.role === 'source' && status.status === 'completed') guest.desired = 'paused';
      await this.store.save(guest);
      this.options.log(
        `guest ${guest.spec.id}: migration ${guest.migration.migrationId} (${guest.migration.role}) ${status.status}` +
          (status.errorDesc ? `: ${status.errorDesc}` : ''),
      );
    }
    return status;
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
          : path.join(this.store.dir(spec.id), 'disks', `${disk.id}.qcow2`);
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

  private qmpSocketPath(id: string): string {
    const inDir = path.join(this.store.dir(id), 'qmp.sock');
    if (inDir.length <= MAX_SOCKET_PATH) return inDir;
    const digest = createHash('sha256').update(inDir).digest('hex').slice(0, 20);
    return path.join(os.tmpdir(), `vmmig-qmp-${digest}.sock`);
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
      pidFilePath: path.join(dir, 'qemu.pid'),
      disks: await this.resolveDisks(guest.spec, !incoming),
      incoming,
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

  private async onEvent(id: string, event: QmpEvent): Promise<void> {
    if (event.event === 'MIGRATION') {
      const status = String(event.data?.status ?? '');
      if (status === 'completed' || status === 'failed' || status === 'cancelled') {
        await this.migrationStatus(id).catch(() => undefined);
      }
    } else if (event.event === 'SHUTDOWN' || event.event === 'GUEST_PANICKED') {
      this.options.log(`guest ${id}: ${event.event} ${JSON.stringify(event.data ?? {})}`);
    }
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

function resultOf(record: MigrationRecord): PrepareIncomingResult {
  return { migrationId: record.migrationId, uri: record.uri, nbdUri: record.nbdUri };
}
