import { describe, expect, it } from 'vitest';
import { blockerOf, grantInOrder, queuePosition, type SlotRequest } from '../../domain/slots.ts';

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
