import { EventEmitter } from 'node:events';
import type { Etcd3, ILeaseKeepAliveResponse, Lease } from 'etcd3';
import { describe, expect, it } from 'vitest';
import { laneOf, SharedKeepalive } from '../../../agent/fleet-keepalive.ts';

/** A keepalive stream that records what was written and answers when told. */
class FakeStream extends EventEmitter {
  readonly written: string[] = [];
  ended = false;
  write(item: { ID?: string | number }): void {
    this.written.push(String(item.ID));
  }
  end(): void {
    this.ended = true;
  }
  cancel(): void {
    this.ended = true;
  }
  answer(id: string, ttl = '10'): void {
    this.emit('data', { ID: id, TTL: ttl } as ILeaseKeepAliveResponse);
  }
}

function fakeClient() {
  const streams: FakeStream[] = [];
  const client = {
    leaseClient: {
      leaseKeepAlive: async () => {
        const stream = new FakeStream();
        streams.push(stream);
        return stream;
      },
    },
  } as unknown as Etcd3;
  return { client, streams };
}

function fakeLease(id: string) {
  const lease = {
    keepalivesOnce: 0,
    grant: async () => id,
    keepaliveOnce: async () => {
      lease.keepalivesOnce++;
      throw new Error(`lease ${id} expired`);
    },
  };
  return lease;
}

const flush = () => new Promise((resolve) => setImmediate(resolve));

/** Settles to 'ok', or the error message. */
function outcome(promise: Promise<void>): { value: string | null } {
  const seen = { value: null as string | null };
  promise.then(
    () => (seen.value = 'ok'),
    (error: Error) => (seen.value = error.message),
  );
  return seen;
}

describe('SharedKeepalive', () => {
  it('renews every lease over one stream', async () => {
    const { client, streams } = fakeClient();
    const keepalive = new SharedKeepalive(client, 1);
    const a = outcome(keepalive.renew(fakeLease('1') as unknown as Lease));
    const b = outcome(keepalive.renew(fakeLease('2') as unknown as Lease));
    await flush();
    expect(streams).toHaveLength(1);
    expect(streams[0]!.written).toEqual(['1', '2']);
    streams[0]!.answer('2');
    await flush();
    expect(b.value).toBe('ok');
    expect(a.value).toBeNull();
    streams[0]!.answer('1');
    await flush();
    expect(a.value).toBe('ok');
  });

  it("matches a lease's answers to its requests in order: an early answer never acknowledges a later request", async () => {
    const { client, streams } = fakeClient();
    const keepalive = new SharedKeepalive(client, 1);
    const lease = fakeLease('7') as unknown as Lease;
    const first = outcome(keepalive.renew(lease));
    await flush();
    const second = outcome(keepalive.renew(lease));
    await flush();
    streams[0]!.answer('7');
    await flush();
    expect(first.value).toBe('ok');
    expect(second.value).toBeNull();
    streams[0]!.answer('7');
    await flush();
    expect(second.value).toBe('ok');
  });

  it('fails every renewal a broken stream owes, and opens a new stream for the next', async () => {
    const { client, streams } = fakeClient();
    const keepalive = new SharedKeepalive(client, 1);
    const a = outcome(keepalive.renew(fakeLease('1') as unknown as Lease));
    const b = outcome(keepalive.renew(fakeLease('2') as unknown as Lease));
    await flush();
    streams[0]!.emit('error', new Error('etcd went away'));
    await flush();
    expect(a.value).toBe('etcd went away');
    expect(b.value).toBe('etcd went away');
    // A late answer on the broken stream acknowledges nothing.
    streams[0]!.answer('1');
    const c = outcome(keepalive.renew(fakeLease('1') as unknown as Lease));
    await flush();
    expect(streams).toHaveLength(2);
    expect(c.value).toBeNull();
    streams[1]!.answer('1');
    await flush();
    expect(c.value).toBe('ok');
  });

  it("hands an expired lease (TTL 0) to the lease's own keepaliveOnce, which reports the loss", async () => {
    const { client, streams } = fakeClient();
    const keepalive = new SharedKeepalive(client, 1);
    const lease = fakeLease('9');
    const renewal = outcome(keepalive.renew(lease as unknown as Lease));
    await flush();
    streams[0]!.answer('9', '0');
    await flush();
    expect(lease.keepalivesOnce).toBe(1);
    expect(renewal.value).toBe('lease 9 expired');
  });

  it('fails what is owed when closed, and ends the stream', async () => {
    const { client, streams } = fakeClient();
    const keepalive = new SharedKeepalive(client, 1);
    const a = outcome(keepalive.renew(fakeLease('1') as unknown as Lease));
    await flush();
    keepalive.close();
    await flush();
    expect(a.value).toBe('keepalive stream closed');
    expect(streams[0]!.ended).toBe(true);
  });
});

describe('laneOf: leases spread over the keepalive streams', () => {
  it('puts a lease on the same lane every time, and a thousand leases on every lane', () => {
    const ids = Array.from({ length: 1000 }, (_, i) => String(7_000_000_000_000_000_000n + BigInt(i * 2)));
    expect(laneOf(ids[0]!, 32)).toBe(laneOf(ids[0]!, 32));
    const perLane = new Map<number, number>();
    for (const id of ids) perLane.set(laneOf(id, 32), (perLane.get(laneOf(id, 32)) ?? 0) + 1);
    expect(perLane.size).toBe(32);
    expect(Math.max(...perLane.values())).toBeLessThan(80);
    expect(laneOf('123', 1)).toBe(0);
  });
});
