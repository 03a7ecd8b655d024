import { describe, expect, it } from 'vitest';
import {
  DEFAULT_PAGE_LIMIT,
  MAX_PAGE_LIMIT,
  PagingError,
  decodeCursor,
  encodeCursor,
  pageLimit,
  pageOf,
} from '../../domain/paging.ts';

describe('pageLimit', () => {
  it('defaults when absent and takes an integer in range', () => {
    expect(pageLimit(undefined)).toBe(DEFAULT_PAGE_LIMIT);
    expect(pageLimit('')).toBe(DEFAULT_PAGE_LIMIT);
    expect(pageLimit('1')).toBe(1);
    expect(pageLimit(String(MAX_PAGE_LIMIT))).toBe(MAX_PAGE_LIMIT);
    expect(pageLimit(undefined, 50)).toBe(50);
  });

  it.each(['0', '-1', '1.5', 'ten', '1e3', String(MAX_PAGE_LIMIT + 1), ' 5'])(
    'refuses %j naming limit',
    (raw) => {
      expect(() => pageLimit(raw)).toThrow(PagingError);
      try {
        pageLimit(raw);
      } catch (err) {
        expect((err as PagingError).field).toBe('limit');
        expect((err as Error).message).toContain(`from 1 to ${MAX_PAGE_LIMIT}`);
      }
    },
  );
});

describe('cursors', () => {
  it('round-trips a key and is opaque', () => {
    const cursor = encodeCursor('servers', { sort: 'demo-1', id: 'a1' });
    expect(cursor).not.toContain('demo-1');
    expect(decodeCursor('servers', cursor)).toEqual({ sort: 'demo-1', id: 'a1' });
    const numeric = encodeCursor('migrations', { sort: 1_764_640_000_000, id: 'm' });
    expect(decodeCursor('migrations', numeric)).toEqual({ sort: 1_764_640_000_000, id: 'm' });
  });

  it('no cursor is the first page', () => {
    expect(decodeCursor('servers', undefined)).toBeNull();
    expect(decodeCursor('servers', '')).toBeNull();
  });

  it.each([
    ['garbage', 'not base64 json'],
    ['a number', Buffer.from('42').toString('base64url')],
    ['a wrong shape', Buffer.from(JSON.stringify(['servers', { x: 1 }, 'id'])).toString('base64url')],
  ])('refuses %s naming cursor', (_what, raw) => {
    expect(() => decodeCursor('servers', raw)).toThrow(/^cursor: not a cursor this API gave out$/);
  });

  it('refuses a cursor of another list', () => {
    const cursor = encodeCursor('hosts', { sort: 'h1', id: 'x' });
    expect(() => decodeCursor('servers', cursor)).toThrow('cursor: it pages hosts, not servers');
  });
});

describe('pageOf', () => {
  const rows = ['a', 'b', 'c'].map((name, i) => ({ name, id: `id-${i}` }));
  const keyOf = (r: { name: string; id: string }) => ({ sort: r.name, id: r.id });

  it('serves limit rows and a cursor naming the last one when more exist', () => {
    const page = pageOf('servers', rows, 2, keyOf);
    expect(page.items.map((r) => r.name)).toEqual(['a', 'b']);
    expect(decodeCursor('servers', page.next_cursor!)).toEqual({ sort: 'b', id: 'id-1' });
  });

  it('has no next cursor on the last page', () => {
    expect(pageOf('servers', rows, 3, keyOf).next_cursor).toBeNull();
    expect(pageOf('servers', [], 3, keyOf)).toEqual({ items: [], next_cursor: null });
  });
});
