import { describe, expect, it } from 'vitest';
import {
  blockerOf,
  grantInOrder,
  limitsExceeded,
  queuePosition,
  remember,
  renewVerdict,
  type SlotRenewal,
  type SlotRequest,
  type SlotsSnapshot,
} from '../../domain/slots.ts';

const req = (id: string, source: string, destination: string): SlotRequest => ({
  migrationId: id,
  workflowId: `wf-${id}`,
  sourceHostId: source,
  destinationHostId: destination,
});
const limits = { perCluster: 3, outboundPerNode: 2, inboundPerNode: 1 };

describe('slot limits', () => {
  it('names the limit a request would break', () => {
    expect(blockerOf(req('x', 'a', 'b'), [], limits)).toBeNull();
    expect(
      blockerOf(req('x', 'a', 'b'), [req('1', 'c', 'd'), req('2', 'e', 'f'), req('3', 'g', 'h')], limits),
    ).toBe('cluster');
    expect(blockerOf(req('x', 'a', 'b'), [req('1', 'a', 'd'), req('2', 'a', 'f')], limits)).toBe('outbound');
    expect(blockerOf(req('x', 'a', 'b'), [req('1', 'c', 'b')], limits)).toBe('inbound');
  });

  it('grants in queue order up to the cluster limit', () => {
    const queue = [req('1', 'a', 'p'), req('2', 'b', 'q'), req('3', 'c', 'r'), req('4', 'd', 's')];
    expect(grantInOrder(queue, [], limits).map((r) => r.migrationId)).toEqual(['1', '2', '3']);
    expect(grantInOrder(queue, [req('0', 'z', 'y')], limits).map((r) => r.migrationId)).toEqual(['1', '2']);
  });

  it('lets later waiters between other hosts pass one blocked on its own host, which stays first in line', () => {
    const holders = [req('0', 'a', 'p')];
    const queue = [req('1', 'b', 'p'), req('2', 'c', 'q')];
    const granted = grantInOrder(queue, holders, limits);
    expect(granted.map((r) => r.migrationId)).toEqual(['2']);
    const remaining = queue.filter((w) => !granted.includes(w));
    expect(queuePosition(remaining, '1')).toBe(1);
    expect(grantInOrder(remaining, [req('2', 'c', 'q')], limits).map((r) => r.migrationId)).toEqual(['1']);
  });

  it('never grants past the outbound limit within one round', () => {
    const queue = [req('1', 'a', 'p'), req('2', 'a', 'q'), req('3', 'a', 'r')];
    expect(grantInOrder(queue, [], { ...limits, perCluster: 10 }).map((r) => r.migrationId)).toEqual([
      '1',
      '2',
    ]);
  });

  it('reports 1-based queue positions', () => {
    const queue = [req('1', 'a', 'p'), req('2', 'b', 'q')];
    expect(queuePosition(queue, '2')).toBe(2);
    expect(queuePosition(queue, 'nope')).toBeNull();
  });
});

describe('a lease renewal (renewVerdict)', () => {
  const a = req('a', 's1', 'd1');
  const b = req('b', 's2', 'd2');
  const c = req('c', 's3', 'd3');
  const snapshot = (over: Partial<SlotsSnapshot> = {}): SlotsSnapshot => ({
    holders: [],
    queue: [],
    expired: [],
    released: [],
    ...over,
  });
  const tight = { perCluster: 1, outboundPerNode: 1, inboundPerNode: 1 };

  it('extends the lease of a holder, whatever the renewal says about it', () => {
    expect(renewVerdict({ migrationId: 'a' }, snapshot({ holders: [a] }), tight)).toEqual({
      action: 'extend',
    });
    expect(renewVerdict({ ...a }, snapshot({ holders: [a], expired: [a] }), tight)).toEqual({
      action: 'extend',
    });
    // A holder is a holder even if an earlier run of it released (acquire forgets the release; belt and braces).
    expect(renewVerdict({ migrationId: 'a' }, snapshot({ holders: [a], released: ['a'] }), tight)).toEqual({
      action: 'extend',
    });
  });

  it('counts a holder whose lease ran out and whose slot was handed on again, above the limit', () => {
    // a's lease ran out while a still ran; b got the only slot; a renews.
    const verdict = renewVerdict({ migrationId: 'a' }, snapshot({ holders: [b], expired: [a] }), tight);
    expect(verdict).toEqual({ action: 'reinstate', holder: a, from: 'expired', exceeds: ['cluster'] });
  });

  it('names every limit the holders then break: cluster, outbound and inbound', () => {
    const sameHosts = req('x', 's1', 'd1');
    const verdict = renewVerdict(
      { migrationId: 'a' },
      snapshot({ holders: [sameHosts], expired: [a] }),
      tight,
    );
    expect(verdict).toMatchObject({ action: 'reinstate', exceeds: ['cluster', 'outbound', 'inbound'] });
    const roomy = { perCluster: 5, outboundPerNode: 1, inboundPerNode: 2 };
    expect(
      renewVerdict({ migrationId: 'a' }, snapshot({ holders: [sameHosts], expired: [a] }), roomy),
    ).toMatchObject({ action: 'reinstate', exceeds: ['outbound'] });
  });

  it('counts it again with no limit broken when its slot is still free', () => {
    expect(renewVerdict({ migrationId: 'a' }, snapshot({ expired: [a] }), tight)).toEqual({
      action: 'reinstate',
      holder: a,
      from: 'expired',
      exceeds: [],
    });
  });

  it("believes the renewal's own hosts over the expired record, and keeps only the request fields", () => {
    const moved = { ...req('a', 's9', 'd9'), leaseMs: 60_000 };
    const verdict = renewVerdict(moved, snapshot({ expired: [{ ...a, leaseMs: 1 } as SlotRequest] }), tight);
    expect(verdict).toEqual({
      action: 'reinstate',
      holder: req('a', 's9', 'd9'),
      from: 'expired',
      exceeds: [],
    });
    const bare: SlotRenewal & { leaseMs: number } = { migrationId: 'a', leaseMs: 5 };
    const fromRecord = renewVerdict(
      bare,
      snapshot({ expired: [{ ...a, leaseMs: 1 } as SlotRequest] }),
      tight,
    );
    expect(fromRecord).toMatchObject({ holder: a });
  });

  it('takes the most recent expiry of a migration', () => {
    const earlier = req('a', 'old', 'old');
    expect(renewVerdict({ migrationId: 'a' }, snapshot({ expired: [earlier, c, a] }), tight)).toMatchObject({
      holder: a,
    });
  });

  it('counts a renewal that says who it is even when its expiry is forgotten (or the slots workflow was reset)', () => {
    expect(renewVerdict({ ...a }, snapshot({ holders: [b] }), tight)).toEqual({
      action: 'reinstate',
      holder: a,
      from: 'renewal',
      exceeds: ['cluster'],
    });
  });

  it('counts a migration still in the queue that renews: it runs, so it holds a slot', () => {
    expect(renewVerdict({ migrationId: 'a' }, snapshot({ queue: [b, a] }), tight)).toEqual({
      action: 'reinstate',
      holder: a,
      from: 'queue',
      exceeds: [],
    });
  });

  it('ignores a renewal that crossed its own release: counting it would leak a slot', () => {
    expect(renewVerdict({ ...a }, snapshot({ released: ['a'], expired: [a] }), tight)).toEqual({
      action: 'ignore',
      reason: 'released',
    });
  });

  it('ignores a renewal from a migration it knows nothing about and that does not say who it is', () => {
    expect(renewVerdict({ migrationId: 'a' }, snapshot({ holders: [b], expired: [c] }), tight)).toEqual({
      action: 'ignore',
      reason: 'unknown',
    });
    // Part of a description is not enough to count it on the right hosts.
    expect(
      renewVerdict({ migrationId: 'a', workflowId: 'wf-a', sourceHostId: 's1' }, snapshot(), tight),
    ).toEqual({ action: 'ignore', reason: 'unknown' });
  });
});

describe('while the holders are above the limits', () => {
  const tight = { perCluster: 2, outboundPerNode: 1, inboundPerNode: 1 };

  it('nobody is granted while the cluster is over its limit, nor at it', () => {
    const holders = [req('1', 'a', 'p'), req('2', 'b', 'q'), req('3', 'c', 'r')];
    expect(grantInOrder([req('4', 'd', 's')], holders, tight)).toEqual([]);
    expect(grantInOrder([req('4', 'd', 's')], holders.slice(1), tight)).toEqual([]);
    expect(grantInOrder([req('4', 'd', 's')], holders.slice(2), tight).map((r) => r.migrationId)).toEqual([
      '4',
    ]);
  });

  it('nobody starts on a host over its limit until it is back under; other hosts go on', () => {
    const limits = { perCluster: 10, outboundPerNode: 1, inboundPerNode: 1 };
    const holders = [req('1', 'a', 'p'), req('2', 'a', 'q')];
    const queue = [req('3', 'a', 'r'), req('4', 'b', 's')];
    expect(grantInOrder(queue, holders, limits).map((r) => r.migrationId)).toEqual(['4']);
    expect(grantInOrder(queue, holders.slice(1), limits).map((r) => r.migrationId)).toEqual(['4']);
    expect(grantInOrder(queue, [], limits).map((r) => r.migrationId)).toEqual(['3', '4']);
  });

  it("limitsExceeded names only limits strictly above, on the given holder's hosts", () => {
    const limits = { perCluster: 2, outboundPerNode: 1, inboundPerNode: 1 };
    const x = req('x', 'a', 'p');
    expect(limitsExceeded(x, [x], limits)).toEqual([]);
    expect(limitsExceeded(x, [x, req('y', 'b', 'q')], limits)).toEqual([]);
    expect(limitsExceeded(x, [x, req('y', 'a', 'q')], limits)).toEqual(['outbound']);
    expect(limitsExceeded(x, [x, req('y', 'b', 'p')], limits)).toEqual(['inbound']);
    expect(limitsExceeded(x, [x, req('y', 'b', 'q'), req('z', 'c', 'r')], limits)).toEqual(['cluster']);
    // Another host's excess is not this holder's.
    expect(
      limitsExceeded(x, [x, req('y', 'b', 'q'), req('z', 'b', 'q')], { ...limits, perCluster: 9 }),
    ).toEqual([]);
  });
});

describe('bounded records', () => {
  it('keep the most recent entries, oldest dropped first', () => {
    const list: number[] = [];
    for (let i = 1; i <= 5; i++) remember(list, i, 3);
    expect(list).toEqual([3, 4, 5]);
  });
});
