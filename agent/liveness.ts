import { Etcd3, EtcdLeaseInvalidError, type Lease } from 'etcd3';
import { readFileSync } from 'node:fs';
import { readFile, rename, writeFile } from 'node:fs/promises';
import { performance } from 'node:perf_hooks';
import { etcdClientOptions, hostHealthKey, type EtcdSettings } from '../domain/config.ts';
import { fencingDeadlineMs, msUntilFence, mustFence, renewalIntervalMs } from '../domain/fencing.ts';
import { errorMessage, type Logger } from './log.ts';

export interface LivenessValue {
  name: string;
  agentUrl: string;
  at: string;
  /** Written just before a graceful stop revokes the lease: the host watch reads it as a shutdown, not a failure. */
  stopping?: true;
}

export interface LivenessOptions extends EtcdSettings {
  ttlSeconds: number;
  hostId: string;
  name: string;
  agentUrl: () => string;
  log: Logger;
  /**
   * Self-fencing: called when a lease that holds (or may hold) the key goes without an acknowledged
   * renewal for the fencing deadline (domain/fencing.ts), or at once when etcd says such a lease
   * expired or was revoked. Once per missed deadline; the caller stops the guests.
   */
  onFence?: (reason: string) => void;
  /** Told when a lease that held the key expired or was revoked (onFence is told too). */
  onLeaseLost?: (reason: string) => void;
  retryDelayMs?: number;
  /** Keeps the send time of the last acknowledged renewal for the next agent on this dir (fenceAtStartup). */
  stateFile?: string;
  /**
   * The previous agent's last acknowledged renewal (wall-clock ms) and its deadline, when that is not
   * yet past: its lease still holds the key, so the deadline runs until this agent's lease holds it.
   */
  previousRenewal?: { sentAtMs: number; deadlineMs: number };
  /**
   * An etcd client shared with other hosts of this process (a sim fleet): its leases are this host's own,
   * and stop() leaves the client open for its owner to close. Absent: a client of its own from the settings.
   */
  client?: Etcd3;
  /**
   * Sends one renewal and resolves once etcd acknowledged that very request (a fleet's shared keepalive stream,
   * agent/fleet-keepalive.ts). Absent: the lease's own keepaliveOnce.
   */
  renewLease?: (lease: Lease) => Promise<unknown>;
}

/** What the state file holds. */
interface RenewalRecord {
  lastRenewalSentAtMs: number;
  lastRenewalSentAt: string;
  lease: string;
  /** The deadline that agent ran with: a restart with a longer TTL must not stretch the old lease's. */
  fencingDeadlineMs: number;
}

export interface LastRenewal {
  /** Wall clock; NaN when the file exists but cannot be read (fenceAtStartup fences then). */
  sentAtMs: number;
  deadlineMs: number | null;
}

/** The previous agent's last acknowledged renewal from the state file; null when there is none. */
export async function readLastRenewal(stateFile: string): Promise<LastRenewal | null> {
  const unreadable = { sentAtMs: Number.NaN, deadlineMs: null };
  let text: string;
  try {
    text = await readFile(stateFile, 'utf8');
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'ENOENT' ? null : unreadable;
  }
  try {
    const record = JSON.parse(text) as Partial<RenewalRecord>;
    if (typeof record.lastRenewalSentAtMs !== 'number') return unreadable;
    const deadlineMs = record.fencingDeadlineMs;
    return {
      sentAtMs: record.lastRenewalSentAtMs,
      deadlineMs: typeof deadlineMs === 'number' && deadlineMs > 0 ? deadlineMs : null,
    };
  } catch {
    return unreadable;
  }
}

/** Writes the latest record atomically; records that come while a write is under way collapse into one. */
class RenewalRecordFile {
  private pending: RenewalRecord | null = null;
  private writing: Promise<void> | null = null;
  private failureLogged = false;

  constructor(
    private readonly file: string,
    private readonly log: Logger,
  ) {}

  write(record: RenewalRecord): void {
    this.pending = record;
    this.writing ??= this.drain().finally(() => (this.writing = null));
  }

  async flushed(): Promise<void> {
    await this.writing;
  }

  private async drain(): Promise<void> {
    while (this.pending !== null) {
      const record = this.pending;
      this.pending = null;
      try {
        await writeFile(`${this.file}.tmp`, `${JSON.stringify(record)}\n`);
        await rename(`${this.file}.tmp`, this.file);
        this.failureLogged = false;
      } catch (error) {
        if (!this.failureLogged) this.log(`liveness: cannot record the renewal: ${errorMessage(error)}`);
        this.failureLogged = true;
      }
    }
  }
}

/**
 * What the key may be under a lease: `maybe` from the moment the put is sent (it may be applied even
 * if its answer never comes), `held` once it is acknowledged, `deleted` once etcd said the lease
 * expired or was revoked.
 */
type KeyHold = 'none' | 'maybe' | 'held' | 'deleted';

/** A lease this agent granted, or the previous agent's, and the fencing deadline that runs for it. */
interface Guard {
  name: string;
  /** null: the previous agent's lease, which this agent cannot renew. */
  lease: Lease | null;
  key: KeyHold;
  deadlineMs: number;
  /** Monotonic send time of the grant or of the latest keepalive that etcd acknowledged. */
  lastSentMs: number;
  lastSentWallMs: number;
  lost: boolean;
  fencedAtMs: number | null;
  renewTimer: NodeJS.Timeout | null;
  fenceTimer: NodeJS.Timeout | null;
}

const monotonicMs = (): number => performance.now();

/**
 * Keeps `/<prefix>/host/health/<host_id>` alive in etcd under a lease with the configured TTL, and
 * fences (onFence) before that lease can expire unrenewed.
 *
 * Keepalives are single requests (`keepaliveOnce`) timed here rather than the etcd3 library's
 * keepalive stream: a stream's answers cannot be matched to the requests they acknowledge, and the
 * fencing clock must start at the send time of an acknowledged request. With etcd unreachable or
 * frozen, requests hang or fail and nothing is acknowledged: the fencing timer does not wait for them,
 * nor for the library's `lost` event (which comes only once etcd answers again, or for the library's
 * own stream after twice the TTL). A lease that is lost is replaced by a new one, for as long as it takes.
 */
export class Liveness {
  private readonly client: Etcd3;
  private readonly deadlineMs: number;
  private readonly renewalMs: number;
  private readonly record: RenewalRecordFile | null;
  /** The lease being granted or renewed now. */
  private current: Guard | null = null;
  /** Leases whose fencing deadline still matters. */
  private readonly guards = new Set<Guard>();
  private stopped = false;
  private retryTimer: NodeJS.Timeout | null = null;
  private held: Promise<void>;
  private markHeld: () => void = () => {};
  private failuresLogged = 0;
  private renewalFailuresLogged = 0;

  constructor(private readonly options: LivenessOptions) {
    this.client = options.client ?? new Etcd3(etcdClientOptions(options, readFileSync));
    this.deadlineMs = fencingDeadlineMs(options.ttlSeconds);
    this.renewalMs = renewalIntervalMs(this.deadlineMs);
    this.record = options.stateFile ? new RenewalRecordFile(options.stateFile, options.log) : null;
    this.held = new Promise((resolve) => (this.markHeld = resolve));
  }

  get key(): string {
    return hostHealthKey(this.options.prefix, this.options.hostId);
  }

  get fencingDeadlineMs(): number {
    return this.deadlineMs;
  }

  start(): void {
    const previous = this.options.previousRenewal;
    if (previous !== undefined) {
      const guard = this.newGuard("the previous agent's lease", null);
      guard.deadlineMs = Math.min(previous.deadlineMs, this.deadlineMs);
      guard.lastSentMs = monotonicMs() - (Date.now() - previous.sentAtMs);
      guard.lastSentWallMs = previous.sentAtMs;
      guard.key = 'held';
      guard.lost = true;
      this.armFence(guard);
    }
    void this.grant();
  }

  /** Resolves once the key has been written under a live lease (tests, startup logging). */
  whenHeld(): Promise<void> {
    return this.held;
  }

  /**
   * revoke=true deletes the key at once (graceful shutdown); revoke=false only stops the keepalives,
   * so the key expires after the TTL as it would if the agent died.
   */
  async stop(options: { revoke?: boolean } = {}): Promise<void> {
    this.stopped = true;
    if (this.retryTimer !== null) clearTimeout(this.retryTimer);
    for (const guard of this.guards) this.clearTimers(guard);
    this.guards.clear();
    const lease = this.current?.lease ?? null;
    this.current = null;
    if (lease !== null) {
      if (options.revoke ?? true) {
        const value: LivenessValue = {
          name: this.options.name,
          agentUrl: this.options.agentUrl(),
          at: new Date().toISOString(),
          stopping: true,
        };
        // Bounded: with etcd unreachable these hang, and a stopping agent must still stop (the lease then expires).
        await withinStopTimeout(lease.put(this.key).value(JSON.stringify(value)).exec()).catch((error) =>
          this.options.log(`liveness: marking the stop failed: ${errorMessage(error)}`),
        );
        await withinStopTimeout(lease.revoke()).catch((error) =>
          this.options.log(`liveness: revoke failed: ${errorMessage(error)}`),
        );
      } else {
        lease.release();
      }
    }
    await this.record?.flushed();
    if (this.options.client === undefined) this.client.close();
  }

  private newGuard(name: string, lease: Lease | null): Guard {
    const guard: Guard = {
      name,
      lease,
      key: 'none',
      deadlineMs: this.deadlineMs,
      lastSentMs: monotonicMs(),
      lastSentWallMs: Date.now(),
      lost: false,
      fencedAtMs: null,
      renewTimer: null,
      fenceTimer: null,
    };
    this.guards.add(guard);
    return guard;
  }

  private async grant(): Promise<void> {
    if (this.stopped) return;
    // The guard's clock starts before the grant is sent: etcd's expiry counts from when it grants.
    const guard = this.newGuard(
      'a new lease',
      this.client.lease(this.options.ttlSeconds, { autoKeepAlive: false }),
    );
    const lease = guard.lease!;
    this.current = guard;
    lease.on('lost', (error) =>
      this.onLost(guard, errorMessage(error), error instanceof EtcdLeaseInvalidError),
    );
    guard.renewTimer = setInterval(() => this.renew(guard), this.renewalMs);
    guard.renewTimer.unref();
    const value: LivenessValue = {
      name: this.options.name,
      agentUrl: this.options.agentUrl(),
      at: new Date().toISOString(),
    };
    try {
      guard.name = `lease ${await lease.grant()}`;
      if (guard.lost || this.stopped) return;
      guard.key = 'maybe';
      this.armFence(guard);
      await lease.put(this.key).value(JSON.stringify(value));
    } catch (error) {
      // A put whose answer failed may still have been applied: its deadline keeps running (see supersede).
      this.onLost(guard, errorMessage(error), error instanceof EtcdLeaseInvalidError);
      return;
    }
    this.onKeyWritten(guard);
  }

  private onKeyWritten(guard: Guard): void {
    if (guard.lost || this.stopped) return;
    guard.key = 'held';
    this.supersede(guard);
    this.options.log(
      `liveness: ${this.key} held with a ${this.options.ttlSeconds}s ${guard.name} (fencing deadline ${this.deadlineMs} ms)`,
    );
    this.failuresLogged = 0;
    this.persist(guard);
    this.markHeld();
  }

  /**
   * The key is under `holder` now. An older lease that may still have held it and is not yet due can
   * no longer expire it: etcd expires it no earlier than its deadline, and the key moved before that.
   * One that etcd already expired or revoked deleted the key, and its fence stands.
   */
  private supersede(holder: Guard): void {
    for (const guard of this.guards) {
      if (guard === holder || guard.key === 'deleted' || guard.fencedAtMs !== null) continue;
      if (mustFence(this.clockOf(guard))) continue;
      this.retire(guard);
    }
  }

  private renew(guard: Guard): void {
    const lease = guard.lease;
    if (lease === null || guard.lost || this.stopped) return;
    const sentMs = monotonicMs();
    const sentWallMs = Date.now();
    (this.options.renewLease?.(lease) ?? lease.keepaliveOnce()).then(
      () => this.onRenewed(guard, sentMs, sentWallMs),
      (error: unknown) => this.onRenewalFailed(guard, error),
    );
  }

  private onRenewed(guard: Guard, sentMs: number, sentWallMs: number): void {
    // Answers of concurrent requests may come in any order: only a later send time moves the clock.
    if (guard.lost || this.stopped || sentMs <= guard.lastSentMs) return;
    guard.lastSentMs = sentMs;
    guard.lastSentWallMs = sentWallMs;
    if (this.renewalFailuresLogged > 0) this.options.log(`liveness: ${guard.name} renewed again`);
    this.renewalFailuresLogged = 0;
    if (guard.fencedAtMs !== null) {
      // Sent before the fence, that renewal was already too late for it.
      if (sentMs < guard.fencedAtMs) return;
      guard.fencedAtMs = null;
      this.options.log(`liveness: ${guard.name} renewed after the fence; the deadline runs again`);
    }
    if (guard.key === 'maybe' || guard.key === 'held') this.armFence(guard);
    if (guard.key === 'held') this.persist(guard);
  }

  private onRenewalFailed(guard: Guard, error: unknown): void {
    // A lease etcd no longer knows is reported by the library's `lost` event.
    if (guard.lost || this.stopped || error instanceof EtcdLeaseInvalidError) return;
    if (this.renewalFailuresLogged++ === 0) {
      this.options.log(
        `liveness: renewing ${guard.name} failed (${errorMessage(error)}); retrying every ${this.renewalMs} ms`,
      );
    }
  }

  private onLost(guard: Guard, reason: string, leaseInvalid: boolean): void {
    if (guard.lost) return;
    guard.lost = true;
    if (guard.renewTimer !== null) clearInterval(guard.renewTimer);
    guard.renewTimer = null;
    guard.lease?.release();
    if (this.stopped) return;
    if (leaseInvalid && guard.key !== 'none') {
      const held = guard.key === 'held';
      guard.key = 'deleted';
      if (held) this.options.onLeaseLost?.(reason);
      this.fence(guard, `${guard.name} expired or was revoked (${reason})`);
    }
    if (guard.key === 'none' || guard.fencedAtMs !== null) this.retire(guard);
    if (this.current !== guard) return;
    this.current = null;
    // etcd down: say so once, then stay quiet until it is back.
    if (this.failuresLogged++ === 0) this.options.log(`liveness: lease lost (${reason}); granting a new one`);
    this.retryTimer = setTimeout(() => void this.grant(), this.options.retryDelayMs ?? 1000);
    this.retryTimer.unref();
  }

  private clockOf(guard: Guard) {
    return { lastRenewalSentAtMs: guard.lastSentMs, nowMs: monotonicMs(), deadlineMs: guard.deadlineMs };
  }

  private armFence(guard: Guard): void {
    if (guard.fenceTimer !== null) clearTimeout(guard.fenceTimer);
    guard.fenceTimer = setTimeout(
      () => {
        guard.fenceTimer = null;
        const clock = this.clockOf(guard);
        if (!mustFence(clock)) return this.armFence(guard);
        const silentMs = Math.round(clock.nowMs - clock.lastRenewalSentAtMs);
        this.fence(
          guard,
          `no renewal of ${guard.name} acknowledged for ${silentMs} ms (fencing deadline ${guard.deadlineMs} ms)`,
        );
      },
      msUntilFence(this.clockOf(guard)),
    );
    guard.fenceTimer.unref();
  }

  private fence(guard: Guard, reason: string): void {
    if (guard.fencedAtMs !== null || this.stopped) return;
    guard.fencedAtMs = monotonicMs();
    if (guard.fenceTimer !== null) clearTimeout(guard.fenceTimer);
    guard.fenceTimer = null;
    this.options.log(`liveness: fencing: ${reason}`);
    try {
      this.options.onFence?.(reason);
    } catch (error) {
      this.options.log(`liveness: fencing hook failed: ${errorMessage(error)}`);
    }
    // A lost lease cannot be renewed: nothing more can happen to it.
    if (guard.lost) this.retire(guard);
  }

  private retire(guard: Guard): void {
    this.clearTimers(guard);
    this.guards.delete(guard);
  }

  private clearTimers(guard: Guard): void {
    if (guard.renewTimer !== null) clearInterval(guard.renewTimer);
    if (guard.fenceTimer !== null) clearTimeout(guard.fenceTimer);
    guard.renewTimer = null;
    guard.fenceTimer = null;
  }

  private persist(guard: Guard): void {
    this.record?.write({
      lastRenewalSentAtMs: guard.lastSentWallMs,
      lastRenewalSentAt: new Date(guard.lastSentWallMs).toISOString(),
      lease: guard.name,
      fencingDeadlineMs: this.deadlineMs,
    });
  }
}

/** How long a graceful stop waits for etcd to take its mark and the revoke. */
const STOP_CALL_TIMEOUT_MS = 2_000;

function withinStopTimeout<T>(call: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`no answer from etcd within ${STOP_CALL_TIMEOUT_MS} ms`)),
      STOP_CALL_TIMEOUT_MS,
    );
  });
  return Promise.race([call, timeout]).finally(() => clearTimeout(timer));
}
