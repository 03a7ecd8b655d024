import { randomUUID } from 'node:crypto';
import { Etcd3 } from 'etcd3';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { hostHealthKey } from '../../domain/config.ts';
import { Liveness, type LivenessValue } from '../../agent/liveness.ts';
import { eventually } from './agent-client.ts';

const endpoints = inject('etcdEndpoints');
const etcd = new Etcd3({ hosts: endpoints });
afterAll(() => etcd.close());

function liveness(prefix: string, hostId: string, extra: { onLeaseLost?: (reason: string) => void } = {}) {
  return new Liveness({
    endpoints,
    prefix,
    ttlSeconds: 2,
    hostId,
    name: 'host-l',
    agentUrl: () => 'http://127.0.0.1:9999',
    log: () => {},
    retryDelayMs: 200,
    ...extra,
  });
}

async function leaseOf(key: string): Promise<string | null> {
  const response = await etcd.kv.range({ key: Buffer.from(key) });
  const kv = response.kvs[0];
  return kv === undefined ? null : String(kv.lease);
}

describe('liveness lease in etcd', () => {
  it('writes the health key under a lease and deletes it on revoke', async () => {
    const prefix = `t${randomUUID().slice(0, 8)}`;
    const hostId = randomUUID();
    const key = hostHealthKey(prefix, hostId);
    const live = liveness(prefix, hostId);
    expect(live.key).toBe(`/${prefix}/host/health/${hostId}`);
    live.start();
    await live.whenHeld();

    const value = JSON.parse((await etcd.get(key).string())!) as LivenessValue;
    expect(value.name).toBe('host-l');
    expect(value.agentUrl).toBe('http://127.0.0.1:9999');
    expect(Date.parse(value.at)).toBeGreaterThan(Date.now() - 60_000);
    expect(await leaseOf(key)).not.toBe('0');

    // Kept alive well past its TTL.
    await new Promise((resolve) => setTimeout(resolve, 3_500));
    expect(await etcd.get(key).string()).not.toBeNull();

    await live.stop({ revoke: true });
    expect(await etcd.get(key).string()).toBeNull();
  });

  it('lets the key expire after the TTL once keepalives stop', async () => {
    const prefix = `t${randomUUID().slice(0, 8)}`;
    const hostId = randomUUID();
    const key = hostHealthKey(prefix, hostId);
    const live = liveness(prefix, hostId);
    live.start();
    await live.whenHeld();
    await live.stop({ revoke: false });
    expect(await etcd.get(key).string()).not.toBeNull();
    const gone = Date.now();
    await eventually(
      'the key to expire',
      async () => ((await etcd.get(key).string()) === null ? true : undefined),
      10_000,
    );
    expect(Date.now() - gone).toBeGreaterThan(500);
  });

  it('grants a new lease when the old one is lost, and calls the self-fencing hook', async () => {
    const prefix = `t${randomUUID().slice(0, 8)}`;
    const hostId = randomUUID();
    const key = hostHealthKey(prefix, hostId);
    const lost: string[] = [];
    const live = liveness(prefix, hostId, { onLeaseLost: (reason) => lost.push(reason) });
    live.start();
    await live.whenHeld();
    const first = await leaseOf(key);

    await etcd.leaseClient.leaseRevoke({ ID: first! });
    const second = await eventually(
      'a new lease on the key',
      async () => {
        const lease = await leaseOf(key);
        return lease !== null && lease !== first ? lease : undefined;
      },
      10_000,
    );
    expect(second).not.toBe('0');
    expect(lost.length).toBeGreaterThanOrEqual(1);
    await live.stop();
    expect(await etcd.get(key).string()).toBeNull();
  });
});
