import { decodeCursor, PagingError, type PageKey } from '../domain/paging.ts';
import { ApiError } from './errors.ts';

/** The key a page starts after; a cursor this list did not give out is a 400 naming `cursor`. */
export function cursorKey(list: string, raw: string | undefined): PageKey | null {
  try {
    return decodeCursor(list, raw);
  } catch (err) {
    if (err instanceof PagingError) throw new ApiError(400, 'invalid_request', err.message, err.field);
    throw err;
  }
}
