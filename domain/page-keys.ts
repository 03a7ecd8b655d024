import type { PageKey } from './paging.ts';

/**
 * A cursor's key checked against the list's key types before it reaches SQL: a cursor that decodes but was not
 * given out by this list (hand-made, or of an older API) is the client's error, not a database cast failure.
 */

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const SERIAL = /^[1-9]\d{0,17}$/;
/** A timestamptz as PostgreSQL prints it (`2026-12-02 10:32:10.123456+00`), as `pageKey` columns give it. */
const PG_TIMESTAMPTZ = /^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}(\.\d{1,6})?[+-]\d{2}(:\d{2}){0,2}$/;

export type KeyId = 'uuid' | 'serial' | 'text';

const idIs = (id: string, kind: KeyId) =>
  kind === 'uuid' ? UUID.test(id) : kind === 'serial' ? SERIAL.test(id) : id.length > 0;

/** A list by name (then id): the name and id to read after; null when the key is not one. */
export function nameKey(key: PageKey, id: KeyId): { name: string; id: string } | null {
  return typeof key.sort === 'string' && idIs(key.id, id) ? { name: key.sort, id: key.id } : null;
}

/** A list by time (then id): the time and id to read past; null when the key is not one. */
export function timeKey(key: PageKey, id: KeyId): { at: string; id: string } | null {
  return typeof key.sort === 'string' && PG_TIMESTAMPTZ.test(key.sort) && idIs(key.id, id)
    ? { at: key.sort, id: key.id }
    : null;
}
