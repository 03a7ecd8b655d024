import { describe, expect, it } from 'vitest';
import { PeerStore, peersRevisionOf } from '../../agent/peers.ts';
import { peerListRevision, samePeer, type Peer } from '../../api/peer-list.ts';

const peer = (id: string, over: Partial<Peer> = {}): Peer => ({
  id,
  name: `host-${id}`,
  address: `10.0.0.${id}`,
  migrationAddress: null,
  agentUrl: `http://10.0.0.${id}:9100`,
  ...over,
});

describe('peerListRevision: the same peers, the same revision', () => {
  it('ignores the order the hosts were read in and any other field', () => {
    const a = [peer('1'), peer('2')];
    const b = [{ ...peer('2'), labels: { x: 'y' } } as Peer, peer('1')];
    expect(peerListRevision(a)).toBe(peerListRevision(b));
  });
  it.each([
    ['a host more', [peer('1'), peer('2'), peer('3')]],
    ['a host fewer', [peer('1')]],
    ['a new agent URL', [peer('1'), peer('2', { agentUrl: 'http://10.0.0.9:9100' })]],
    ['a migration address', [peer('1'), peer('2', { migrationAddress: '192.168.0.2' })]],
    ['a new name', [peer('1'), peer('2', { name: 'renamed' })]],
  ])('changes with %s', (_what, changed) => {
    expect(peerListRevision(changed)).not.toBe(peerListRevision([peer('1'), peer('2')]));
  });
  it('samePeer compares what agents use of a peer', () => {
    expect(samePeer(peer('1'), peer('1'))).toBe(true);
    expect(samePeer(peer('1'), peer('1', { address: '10.9.9.9' }))).toBe(false);
  });
});

describe('PeerStore: a registration answer without the list keeps the list held', () => {
  const host1 = peer('1');
  const host2 = peer('2');
  it('sends back the revision it holds, keeps its peers when the answer omits them', () => {
    const store = new PeerStore({ refresh: async () => undefined });
    expect(store.revision()).toBeNull();
    store.follow({ id: 'me', peersRevision: 'r1', peers: [host1, host2] });
    expect(store.revision()).toBe('r1');
    store.follow({ id: 'me', peersRevision: 'r1' });
    expect(store.list()).toEqual([host1, host2]);
    expect(store.revision()).toBe('r1');
  });
  it('asks for the whole list again when an answer names a revision it does not hold', () => {
    const store = new PeerStore({ refresh: async () => undefined });
    // Revisions name content (a hash), so this test's list gets a revision of its own.
    store.follow({ id: 'me', peersRevision: 'only-host-1', peers: [host1] });
    store.follow({ id: 'me', peersRevision: 'r2' });
    expect(store.revision()).toBeNull();
    expect(store.list()).toEqual([host1]);
  });
  it('shares one copy of a revision between the stores of one process (a sim fleet)', () => {
    const a = new PeerStore({ refresh: async () => undefined });
    const b = new PeerStore({ refresh: async () => undefined });
    a.follow({ peersRevision: 'shared-r', peers: [host1, host2] });
    b.follow({ peersRevision: 'shared-r', peers: [host1, host2] });
    expect((a as unknown as { registered: unknown }).registered).toBe(
      (b as unknown as { registered: unknown }).registered,
    );
  });
  it('reads the revision of an answer', () => {
    expect(peersRevisionOf({ peersRevision: 'abc' })).toBe('abc');
    expect(peersRevisionOf({ peers: [] })).toBeNull();
    expect(peersRevisionOf(null)).toBeNull();
  });
});
