import { describe, expect, it } from 'vitest';
import {
  EVACUATION_PRIORITY_LABEL,
  evacuationPriority,
  evacuationSummary,
  planEvacuation,
  type EvacuationGuest,
} from '../../domain/evacuation.ts';
import type { GuestStatus } from '../../domain/guest-status.ts';

const guest = (name: string, status: GuestStatus, priority?: string): EvacuationGuest => ({
  id: `id-${name}`,
  name,
  status,
  labels: priority === undefined ? {} : { [EVACUATION_PRIORITY_LABEL]: priority },
});

describe('planEvacuation', () => {
  it('live-migrates running guests and moves stopped ones cold', () => {
    const steps = planEvacuation([guest('a', 'running'), guest('b', 'ready'), guest('c', 'stopped')]);
    expect(steps.map((s) => [s.name, s.kind])).toEqual([
      ['a', 'live'],
      ['b', 'cold'],
      ['c', 'cold'],
    ]);
  });

  it.each(['creating', 'deleting', 'error'] as const)('leaves a %s guest, saying why', (status) => {
    const [step] = planEvacuation([guest('x', status)]);
    expect(step).toMatchObject({ kind: 'stays', reason: `${status}: nothing to move until it settles` });
  });

  it('leaves a migrating guest to its migration', () => {
    const [step] = planEvacuation([guest('m', 'migrating')]);
    expect(step).toMatchObject({
      kind: 'stays',
      reason: 'migrating already: its migration takes it off the host',
    });
  });

  it('orders by priority, highest first, then by name', () => {
    const steps = planEvacuation([
      guest('zeta', 'running'),
      guest('alpha', 'running'),
      guest('vip', 'running', '10'),
      guest('low', 'ready', '-5'),
      guest('mid', 'ready', '3'),
    ]);
    expect(steps.map((s) => s.name)).toEqual(['vip', 'mid', 'alpha', 'zeta', 'low']);
  });
});

describe('evacuationPriority', () => {
  it.each([
    [{}, 0],
    [{ [EVACUATION_PRIORITY_LABEL]: '7' }, 7],
    [{ [EVACUATION_PRIORITY_LABEL]: '-2' }, -2],
    [{ [EVACUATION_PRIORITY_LABEL]: 'high' }, 0],
  ])('%j -> %d', (labels, priority) => expect(evacuationPriority(labels)).toBe(priority));
});

describe('evacuationSummary', () => {
  const outcome = (outcome: 'moved' | 'failed' | 'stays') => ({
    guestId: 'g',
    name: 'g',
    kind: 'live' as const,
    outcome,
    destination: null,
    reason: null,
  });
  it('says the host is empty only when everything moved', () => {
    expect(evacuationSummary('h1', [outcome('moved'), outcome('moved')])).toBe(
      'host h1: 2 guest(s) moved, 0 failed, 0 could not move; the host is empty',
    );
    expect(evacuationSummary('h1', [outcome('moved'), outcome('failed'), outcome('stays')])).toBe(
      'host h1: 1 guest(s) moved, 1 failed, 1 could not move',
    );
  });
});
