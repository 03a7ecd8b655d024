import { Etcd3, type Lease } from 'etcd3';
import { hostHealthKey } from '../domain/config.ts';
import { errorMessage, type Logger } from './log.ts';

export interface LivenessValue {
  name: string;
  agentUrl: string;
  at: string;
}

export interface LivenessOptions {
  endpoints: string[];
  prefix: string;
  ttlSeconds: number;
  hostId: string;
  name: string;
  agentUrl: () => string;
  log: Logger;
  /**
   * Self-fencing hook: called when the lease was lost (expired while etcd was unreachable, or
   * revoked by someone else). A later issue makes the agent stop its guests here before another
   * host may restart them; until then it is only logged.
   */
  onLeaseLost?: (reason: string) => void;
  retryDelayMs?: number;
}

/**
 * Keeps `/<prefix>/host/health/<host_id>` alive in etcd under a lease with the configured TTL.
 * A lost lease is logged, reported to the self-fencing hook and granted anew.
 */
export class Liveness {
  private readonly client: Etcd3;
  private lease: Lease | null = null;
  /** The lease under which the key was last written: losing that one is what the fencing hook is about. */
  private heldLease: Lease | null = null;
  private stopped = false;
  private retryTimer: NodeJS.Timeout | null = null;
  private held: Promise<void>;
  private markHeld: () => void = () => {};
  private failuresLogged = 0;

  constructor(private readonly options: LivenessOptions) {
    this.client = new Etcd3({ hosts: options.endpoints, dialTimeout: 3000 });
    this.held = new Promise((resolve) => (this.markHeld = resolve));
  }

  get key(): string {
    return hostHealthKey(this.options.prefix, this.options.hostId);
  }

  start(): void {
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
    const lease = this.lease;
    this.lease = null;
    if (lease !== null) {
      if (options.revoke ?? true) {
        await lease
          .revoke()
          .catch((error) => this.options.log(`liveness: revoke failed: ${errorMessage(error)}`));
      } else {
        lease.release();
      }
    }
    this.client.close();
  }

  private async grant(): Promise<void> {
    if (this.stopped) return;
    const lease = this.client.lease(this.options.ttlSeconds, { autoKeepAlive: true });
    this.lease = lease;
    lease.on('lost', (error) => this.onLost(lease, errorMessage(error)));
    const value: LivenessValue = {
      name: this.options.name,
      agentUrl: this.options.agentUrl(),
      at: new Date().toISOString(),
    };
    try {
      await lease.put(this.key).value(JSON.stringify(value));
      if (this.lease !== lease) return;
      this.options.log(`liveness: ${this.key} held with a ${this.options.ttlSeconds}s lease`);
      this.failuresLogged = 0;
      this.heldLease = lease;
      this.markHeld();
    } catch (error) {
      this.onLost(lease, errorMessage(error));
    }
  }

  private onLost(lease: Lease, reason: string): void {
    if (this.stopped || this.lease !== lease) return;
    this.lease = null;
    lease.release();
    // etcd down: say so once, then stay quiet until it is back.
    if (this.failuresLogged++ === 0) this.options.log(`liveness: lease lost (${reason}); granting a new one`);
    if (this.heldLease === lease) this.options.onLeaseLost?.(reason);
    this.retryTimer = setTimeout(() => void this.grant(), this.options.retryDelayMs ?? 1000);
    this.retryTimer.unref();
  }
}
