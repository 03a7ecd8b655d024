import { describe, expect, it } from 'vitest';
import { parseMigrationUri } from '../../agent/migration-uri.ts';
import {
  type PeerHost,
  peersFromRegistration,
  peersOwning,
  PeerStore,
  peersWithAddress,
} from '../../agent/peers.ts';

const host1: PeerHost = {
  id: 'h1',
  name: 'host-1',
  address: '10.0.0.1',
  migrationAddress: '192.168.50.1',
  agentUrl: 'http://10.0.0.1:9101',
};
const host2: PeerHost = {
  id: 'h2',
  name: 'host-2',
  address: 'FD00::2',
  migrationAddress: null,
  agentUrl: 'http://[fd00::2]:9101',
};

function target(uri: string, driver: 'qemu' | 'sim' = 'qemu') {
  const parsed = parseMigrationUri(uri, driver);
  if (!parsed.ok) throw new Error(parsed.expected);
  return parsed.value;
}

describe('peers from the registration answer', () => {
  it('reads the listed hosts, skipping malformed entries; no list keeps what the agent had', () => {
    expect(peersFromRegistration({ id: 'h1', peers: [host1, { id: 'x' }, null, host2] })).toEqual([
      host1,
      host2,
    ]);
    expect(peersFromRegistration({ id: 'h1', peers: [] })).toEqual([]);
    expect(peersFromRegistration({ id: 'h1' })).toBeNull();
    expect(peersFromRegistration(null)).toBeNull();
    expect(peersFromRegistration({ peers: 'all' })).toBeNull();
  });

  it('finds the owner of an endpoint by address or migration address (canonical), or by agent URL', () => {
    expect(peersOwning(target('tcp:192.168.50.1:4000'), [host1, host2])).toEqual([host1]);
    expect(peersOwning(target('tcp:10.0.0.1:4000'), [host1, host2])).toEqual([host1]);
    expect(peersOwning(target('tcp:[fd00:0::2]:4000'), [host1, host2])).toEqual([host2]);
    expect(peersOwning(target('tcp:10.0.0.3:4000'), [host1, host2])).toEqual([]);
    // The sim's transport is the agent: its host:port, not its address.
    const sim = 'sim+http://10.0.0.1:9101/v1/internal/sim/migrations/m?guest=g';
    expect(peersOwning(target(sim, 'sim'), [host1, host2])).toEqual([host1]);
    expect(peersOwning(target(sim.replace(':9101', ':9102'), 'sim'), [host1, host2])).toEqual([]);
    expect(peersWithAddress('192.168.50.1', [host1, host2])).toEqual([host1]);
    expect(peersWithAddress('127.0.0.1', [host1, host2])).toEqual([]);
  });
});

describe('PeerStore', () => {
  it('holds the last registration answer plus the configured peers, read at each look', () => {
    const configured: PeerHost[] = [];
    const store = new PeerStore({ configured: () => configured });
    expect(store.list()).toEqual([]);
    store.follow({ peers: [host1] });
    configured.push(host2);
    expect(store.list()).toEqual([host1, host2]);
    store.follow({ id: 'older API, no peers' });
    expect(store.list()).toEqual([host1, host2]);
    store.follow({ peers: [] });
    expect(store.list()).toEqual([host2]);
    expect(store.source()).toContain('options');
  });

  it('trusts nobody without registration or configured peers', async () => {
    const store = new PeerStore();
    expect(await store.find((peers) => peersWithAddress('127.0.0.1', peers))).toEqual([]);
    expect(store.source()).toMatch(/^none/);
  });

  it('registers again once before it gives up on an unknown host, never more than once per interval', async () => {
    let refreshes = 0;
    const store: PeerStore = new PeerStore({
      refreshIntervalMs: 200,
      refresh: async () => {
        refreshes += 1;
        // A host registered a moment ago is in the next answer.
        store.follow({ peers: refreshes >= 1 ? [host1] : [] });
      },
    });
    expect(store.source()).toContain('registered');
    const findHost1 = () => store.find((peers) => peersWithAddress('10.0.0.1', peers));
    const findNobody = () => store.find((peers) => peersWithAddress('10.9.9.9', peers));

    expect(await findHost1()).toEqual([host1]);
    expect(refreshes).toBe(1);
    // Known now: no refresh.
    expect(await findHost1()).toEqual([host1]);
    expect(refreshes).toBe(1);

    // Unknown: concurrent callers share one refresh, which waits out the interval since the last one.
    const started = Date.now();
    const [a, b] = await Promise.all([findNobody(), findNobody()]);
    expect([a, b]).toEqual([[], []]);
    expect(refreshes).toBe(2);
    expect(Date.now() - started).toBeGreaterThanOrEqual(150);
  });

  it('refuses rather than fails when the refresh itself fails', async () => {
    const store = new PeerStore({
      refreshIntervalMs: 0,
      refresh: async () => {
        throw new Error('API down');
      },
    });
    expect(await store.find((peers) => peersWithAddress('10.0.0.1', peers))).toEqual([]);
  });
});
