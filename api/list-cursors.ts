import { ApiError } from './errors.ts';
import { cursorKey } from './paging.ts';
import type { PageKey } from '../domain/paging.ts';

/**
 * The key a page starts after, in the list's own key types (domain/page-keys.ts); a cursor of another list, or
 * one whose key this list could not have written, is a 400 naming `cursor`.
 */
export function listCursor<K>(
  list: string,
  raw: string | undefined,
  keyOf: (key: PageKey) => K | null,
): K | null {
  const key = cursorKey(list, raw);
  if (key === null) return null;
  const typed = keyOf(key);
  if (typed === null)
    throw new ApiError(400, 'invalid_request', 'cursor: not a cursor this API gave out', 'cursor');
  return typed;
}
