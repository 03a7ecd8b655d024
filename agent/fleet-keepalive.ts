import type { Etcd3, IDuplexStream, ILeaseKeepAliveRequest, ILeaseKeepAliveResponse, Lease } from 'etcd3';

type KeepaliveStream = IDuplexStream<ILeaseKeepAliveRequest, ILeaseKeepAliveResponse>;

interface Waiter {
  resolve: (answer: ILeaseKeepAliveResponse) => void;
  reject: (error: Error) => void;
}

/** One keepalive stream and, per lease, the requests it still owes an answer, oldest first. */
class StreamState {
  readonly owed = new Map<string, Waiter[]>();
  closed = false;

  constructor(readonly stream: KeepaliveStream) {}

  push(id: string, waiter: Waiter): void {
    if (this.closed) return waiter.reject(new Error('keepalive stream closed'));
    const queue = this.owed.get(id);
    if (queue === undefined) this.owed.set(id, [waiter]);
    else queue.push(waiter);
  }

  answer(response: ILeaseKeepAliveResponse): void {
    const queue = this.owed.get(String(response.ID));
    const waiter = queue?.shift();
    if (queue !== undefined && queue.length === 0) this.owed.delete(String(response.ID));
    waiter?.resolve(response);
  }

  fail(error: Error): void {
    this.closed = true;
    for (const queue of this.owed.values()) for (const waiter of queue) waiter.reject(error);
    this.owed.clear();
  }
}

/**
 * Lease renewals of many hosts over ONE keepalive stream (a sim fleet: agent/fleet.ts). etcd3's keepaliveOnce opens
 * a stream per renewal, which for a thousand leases renewed every two seconds is most of a core.
 *
 * etcd answers a keepalive stream's requests one by one in the order they came, each answer naming its lease:
 * the n-th answer for a lease is the answer to the n-th request for it on that stream, so each renewal hears its
 * own acknowledgement (agent/liveness.ts starts the fencing clock at the acknowledged request's send time, so an
 * earlier request's answer must never acknowledge a later one). A stream that fails fails every renewal it owes;
 * the next renewal opens a new one. An expired lease (TTL 0) is handed to the lease's own keepaliveOnce, which
 * reports the loss as for a single agent.
 */
export class SharedKeepalive {
  private readonly lanes: KeepaliveLane[];

  /**
   * etcd serves one stream's renewals one after another, and a renewal waits for etcd's applied index to catch up
   * with its commits: under a burst of writes, a thousand renewals queued on one stream took longer than the
   * TTL. So the leases are spread over `lanes` streams (by lease id), which etcd serves side by side.
   */
  constructor(client: Etcd3, lanes = DEFAULT_KEEPALIVE_LANES) {
    this.lanes = Array.from({ length: Math.max(1, lanes) }, () => new KeepaliveLane(client));
  }

  async renew(lease: Lease): Promise<void> {
    const id = await lease.grant();
    return this.lanes[laneOf(id, this.lanes.length)]!.renew(lease, id);
  }

  close(): void {
    for (const lane of this.lanes) lane.close();
  }
}

/** Keepalive streams of a fleet: enough that no lane holds more than a few dozen of a thousand leases. */
export const DEFAULT_KEEPALIVE_LANES = 32;

/** A lease's lane: its id (a decimal string) modulo the lanes, stable for the lease's life. */
export function laneOf(id: string, lanes: number): number {
  // FNV-1a, then murmur3's finaliser: lease ids are counters, and their last digits alone would crowd lanes.
  let hash = 0x811c9dc5;
  for (let i = 0; i < id.length; i++) hash = Math.imul(hash ^ id.charCodeAt(i), 0x01000193);
  hash ^= hash >>> 16;
  hash = Math.imul(hash, 0x85ebca6b);
  hash ^= hash >>> 13;
  hash = Math.imul(hash, 0xc2b2ae35);
  hash ^= hash >>> 16;
  return (hash >>> 0) % lanes;
}

/** One keepalive stream and the renewals it owes. */
class KeepaliveLane {
  private current: Promise<StreamState> | null = null;
  private open: StreamState | null = null;

  constructor(private readonly client: Etcd3) {}

  async renew(lease: Lease, id: string): Promise<void> {
    const state = await this.stream();
    const answer = await new Promise<ILeaseKeepAliveResponse>((resolve, reject) => {
      state.push(id, { resolve, reject });
      try {
        state.stream.write({ ID: id });
      } catch (error) {
        this.drop(state, error instanceof Error ? error : new Error(String(error)));
      }
    });
    if (answer.TTL === '0') await lease.keepaliveOnce();
  }

  /** Ends the stream (the client's owner closes the client). */
  close(): void {
    const open = this.open;
    this.current = null;
    this.open = null;
    if (open === null) return;
    open.fail(new Error('keepalive stream closed'));
    open.stream.end();
  }

  private stream(): Promise<StreamState> {
    const current = this.current;
    if (current !== null) return current;
    const opening = this.client.leaseClient.leaseKeepAlive().then((stream) => {
      const state = new StreamState(stream);
      stream.on('data', (response) => state.answer(response));
      stream.on('error', (error) => this.drop(state, error));
      stream.on('end', () => this.drop(state, new Error('keepalive stream ended')));
      if (this.current === opening) this.open = state;
      return state;
    });
    this.current = opening;
    // A stream that cannot open fails this renewal only: the next one tries again.
    opening.catch(() => {
      if (this.current === opening) this.current = null;
    });
    return opening;
  }

  private drop(state: StreamState, error: Error): void {
    if (state.closed) return;
    state.fail(error);
    if (this.open === state) {
      this.open = null;
      this.current = null;
    }
    try {
      state.stream.cancel();
    } catch {
      // Already gone.
    }
  }
}
