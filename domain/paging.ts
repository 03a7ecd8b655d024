/**
 * Keyset paging for every list endpoint: a stable order (a sort key, then the id to break ties), `limit`
 * items per page, and an opaque cursor naming the last item served. A page is read as "after this key", so
 * rows added or removed meanwhile never make a reader skip or repeat one (offsets would).
 */

export const DEFAULT_PAGE_LIMIT = 100;
export const MAX_PAGE_LIMIT = 1000;

/** Where a page ends: the sort key of its last item and that item's id. */
export interface PageKey {
  sort: string | number;
  id: string;
}

export class PagingError extends Error {
  constructor(
    readonly field: 'limit' | 'cursor',
    message: string,
  ) {
    super(message);
  }
}

/** `limit` as a query gives it: absent means the default; anything but an integer in range is refused. */
export function pageLimit(raw: string | undefined, max = MAX_PAGE_LIMIT): number {
  if (raw === undefined || raw === '') return Math.min(DEFAULT_PAGE_LIMIT, max);
  const value = Number(raw);
  if (!/^\d+$/.test(raw) || !Number.isSafeInteger(value) || value < 1 || value > max) {
    throw new PagingError('limit', `limit: expected an integer from 1 to ${max}, got '${raw}'`);
  }
  return value;
}

/** Opaque to clients (base64url of JSON), and bound to the list it came from so it cannot be misused elsewhere. */
export function encodeCursor(list: string, key: PageKey): string {
  return Buffer.from(JSON.stringify([list, key.sort, key.id]), 'utf8').toString('base64url');
}

export function decodeCursor(list: string, raw: string | undefined): PageKey | null {
  if (raw === undefined || raw === '') return null;
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(raw, 'base64url').toString('utf8'));
  } catch {
    throw new PagingError('cursor', 'cursor: not a cursor this API gave out');
  }
  if (
    !Array.isArray(parsed) ||
    parsed.length !== 3 ||
    typeof parsed[2] !== 'string' ||
    (typeof parsed[1] !== 'string' && typeof parsed[1] !== 'number')
  ) {
    throw new PagingError('cursor', 'cursor: not a cursor this API gave out');
  }
  if (parsed[0] !== list) {
    throw new PagingError('cursor', `cursor: it pages ${String(parsed[0])}, not ${list}`);
  }
  return { sort: parsed[1], id: parsed[2] };
}

/**
 * One page from rows read in the list's order, one more than `limit` asked for: the extra row only says a next
 * page exists, and the cursor names the last row served.
 */
export function pageOf<T>(
  list: string,
  rows: readonly T[],
  limit: number,
  keyOf: (row: T) => PageKey,
): { items: T[]; next_cursor: string | null } {
  const items = rows.slice(0, limit);
  const last = items.at(-1);
  return {
    items,
    next_cursor: rows.length > limit && last !== undefined ? encodeCursor(list, keyOf(last)) : null,
  };
}
