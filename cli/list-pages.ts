import { DEFAULT_PAGE_LIMIT, MAX_PAGE_LIMIT } from '../domain/paging.ts';
import { apiAllPages } from './api-client.ts';
import { stringOption, UsageError, type ParsedArgs } from './command.ts';
import type { ApiConnection } from './connection.ts';

/** The newest `--limit` items of a list that never ends (events), 100 by default, across as many pages as that takes. */
export async function newestPages<T>(
  conn: ApiConnection,
  path: string,
  query: URLSearchParams,
  limit: number | undefined,
): Promise<T[]> {
  const wanted = limit ?? DEFAULT_PAGE_LIMIT;
  if (wanted < 1) throw new UsageError(`--limit expects a positive integer, got ${wanted}`);
  query.set('limit', String(Math.min(wanted, MAX_PAGE_LIMIT)));
  return apiAllPages<T>(conn, path, query, wanted);
}

/** Sets each flag given on the command line as the query parameter of the same name (the API checks the values). */
export function filterQuery(args: ParsedArgs, flags: readonly string[]): URLSearchParams {
  const query = new URLSearchParams();
  for (const flag of flags) {
    const value = stringOption(args, flag);
    if (value !== undefined) query.set(flag, value);
  }
  return query;
}
