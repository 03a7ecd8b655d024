import { afterEach, describe, expect, it, vi } from 'vitest';
import { UsageError } from '../../cli/command.ts';
import { filterQuery, newestPages } from '../../cli/list-pages.ts';

const conn = { baseUrl: 'http://api.test', token: 't' };

/** An API whose list holds `total` numbered items, paged as the server does. */
function fakeList(total: number) {
  const asked: URL[] = [];
  vi.stubGlobal('fetch', async (input: string) => {
    const url = new URL(input);
    asked.push(url);
    const limit = Number(url.searchParams.get('limit') ?? 100);
    const from = Number(url.searchParams.get('cursor') ?? 0);
    const items = Array.from({ length: Math.max(0, Math.min(limit, total - from)) }, (_, i) => from + i);
    const next = from + items.length < total ? String(from + items.length) : null;
    return new Response(JSON.stringify({ items, next_cursor: next }), { status: 200 });
  });
  return asked;
}

afterEach(() => vi.unstubAllGlobals());

describe('newestPages', () => {
  it('reads the newest --limit across pages of at most 1000', async () => {
    const asked = fakeList(2500);
    const items = await newestPages<number>(conn, '/v1/x', new URLSearchParams({ type: 'a' }), 1500);
    expect(items).toEqual(Array.from({ length: 1500 }, (_, i) => i));
    expect(asked.map((u) => u.searchParams.get('limit'))).toEqual(['1000', '1000']);
    expect(asked.every((u) => u.searchParams.get('type') === 'a')).toBe(true);
  });

  it('reads 100 by default, and stops at the last page', async () => {
    fakeList(250);
    expect(await newestPages<number>(conn, '/v1/x', new URLSearchParams(), undefined)).toHaveLength(100);
    fakeList(30);
    expect(await newestPages<number>(conn, '/v1/x', new URLSearchParams(), 50)).toHaveLength(30);
  });

  it.each([0, -3])('refuses --limit %d', async (limit) => {
    fakeList(5);
    await expect(newestPages(conn, '/v1/x', new URLSearchParams(), limit)).rejects.toThrow(UsageError);
  });
});

describe('filterQuery', () => {
  it('passes the flags given, by their own names, and leaves out the others', () => {
    const query = filterQuery(
      { values: { status: 'online', label: 'zone=a', other: 'x' }, positionals: [] },
      ['status', 'enabled', 'label'],
    );
    expect(query.toString()).toBe('status=online&label=zone%3Da');
  });
});
