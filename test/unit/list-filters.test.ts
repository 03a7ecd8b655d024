import { describe, expect, it } from 'vitest';
import { effectiveHostStatus, type EffectiveHostStatus } from '../../domain/host-status.ts';
import {
  booleanFilter,
  hostStatusCondition,
  LABEL_FILTER,
  labelFilter,
  type HostStatusCondition,
} from '../../domain/list-filters.ts';
import { encodeCursor, decodeCursor } from '../../domain/paging.ts';
import { nameKey, timeKey } from '../../domain/page-keys.ts';

/** What the SQL of db/inventory.ts listHosts does with the condition, for one row. */
function matches(condition: HostStatusCondition, stored: 'online' | 'offline' | 'maintenance', id: string) {
  if ((stored === 'maintenance') !== condition.storedMaintenance) return false;
  if (condition.ids === undefined) return true;
  return 'in' in condition.ids ? condition.ids.in.includes(id) : !condition.ids.notIn.includes(id);
}

describe('hostStatusCondition', () => {
  const statuses: EffectiveHostStatus[] = ['online', 'offline', 'maintenance'];
  const stored = ['online', 'offline', 'maintenance'] as const;

  it.each(statuses)('selects exactly the rows the list reports as %s', (status) => {
    const online = new Set(['live']);
    for (const s of stored) {
      for (const id of ['live', 'dead']) {
        const reported = effectiveHostStatus(s, online.has(id));
        expect(matches(hostStatusCondition(status, online), s, id), `${s}/${id}`).toBe(reported === status);
      }
    }
  });

  it('with no live lease: online matches nothing, offline every host not in maintenance', () => {
    expect(hostStatusCondition('online', new Set())).toEqual({ storedMaintenance: false, ids: { in: [] } });
    expect(hostStatusCondition('offline', new Set())).toEqual({
      storedMaintenance: false,
      ids: { notIn: [] },
    });
    expect(hostStatusCondition('maintenance', new Set(['a']))).toEqual({ storedMaintenance: true });
  });
});

describe('labelFilter', () => {
  it.each([
    ['zone=a', { key: 'zone', value: 'a' }],
    ['zone=', { key: 'zone', value: '' }],
    ['k=v=w', { key: 'k', value: 'v=w' }],
  ])('splits %j at its first =', (raw, pair) => {
    expect(LABEL_FILTER.test(raw)).toBe(true);
    expect(labelFilter(raw)).toEqual(pair);
  });

  it.each(['zone', '=a', ''])('refuses %j', (raw) => {
    expect(LABEL_FILTER.test(raw)).toBe(false);
    expect(() => labelFilter(raw)).toThrow(/label: expected key=value/);
  });
});

describe('booleanFilter', () => {
  it('reads true and false, and leaves absent absent', () => {
    expect(booleanFilter('true')).toBe(true);
    expect(booleanFilter('false')).toBe(false);
    expect(booleanFilter(undefined)).toBeUndefined();
  });
});

describe('page keys', () => {
  const uuid = '0b0e7a52-3c1f-4c55-9d5e-6f1a2b3c4d5e';
  const roundTrip = (sort: string | number, id: string) =>
    decodeCursor('l', encodeCursor('l', { sort, id })) ?? { sort: '', id: '' };

  it('nameKey takes a name and an id of the list type', () => {
    expect(nameKey(roundTrip('h1', uuid), 'uuid')).toEqual({ name: 'h1', id: uuid });
    expect(nameKey(roundTrip('gold', 'gold'), 'text')).toEqual({ name: 'gold', id: 'gold' });
    expect(nameKey(roundTrip('h1', 'not-a-uuid'), 'uuid')).toBeNull();
    expect(nameKey(roundTrip(5, uuid), 'uuid')).toBeNull();
    expect(nameKey(roundTrip('gold', ''), 'text')).toBeNull();
  });

  it.each([
    '2026-12-02 10:32:10.123456+00',
    '2026-12-02 10:32:10+00',
    '2026-12-02 10:32:10.1+05:30',
    '1901-12-13 20:45:52-00:01:15',
  ])('timeKey takes PostgreSQL timestamptz text %j', (at) => {
    expect(timeKey(roundTrip(at, '42'), 'serial')).toEqual({ at, id: '42' });
    expect(timeKey(roundTrip(at, uuid), 'uuid')).toEqual({ at, id: uuid });
  });

  it.each([
    ['an ISO time with T', '2026-12-02T10:32:10Z', '42'],
    ['garbage', 'yesterday', '42'],
    ['a number', 1700000000, '42'],
    ['an id that is no serial', '2026-12-02 10:32:10+00', '4x'],
    ['a zero id', '2026-12-02 10:32:10+00', '0'],
    ['an id too large for bigint', '2026-12-02 10:32:10+00', '9'.repeat(19)],
  ])('timeKey refuses %s', (_what, sort, id) => {
    expect(timeKey(roundTrip(sort, id), 'serial')).toBeNull();
  });
});
