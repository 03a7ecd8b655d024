import type { ApiConnection } from './connection.ts';

export class ApiRequestError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/** The answer's body; an error status throws, naming the API's message. */
export async function apiRequest<T>(
  conn: ApiConnection,
  method: string,
  path: string,
  body?: unknown,
): Promise<T> {
  return (await apiExchange<T>(conn, method, path, body)).body;
}

/** The answer's status and body, for a command that tells a 200 from a 202 (already so, or started). */
export async function apiExchange<T>(
  conn: ApiConnection,
  method: string,
  path: string,
  body?: unknown,
): Promise<{ status: number; body: T }> {
  let res: Response;
  try {
    res = await fetch(`${conn.baseUrl}${path}`, {
      method,
      headers: {
        authorization: `Bearer ${conn.token}`,
        ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
      },
      body: body !== undefined ? JSON.stringify(body) : undefined,
    });
  } catch (err) {
    throw new ApiRequestError(0, `cannot reach the API at ${conn.baseUrl}: ${(err as Error).message}`);
  }
  const text = await res.text();
  const parsed = text ? (JSON.parse(text) as unknown) : null;
  if (!res.ok) {
    const error = (parsed as { error?: { message?: string } } | null)?.error;
    throw new ApiRequestError(res.status, error?.message ?? `${res.status} ${text}`);
  }
  return { status: res.status, body: parsed as T };
}

/** The items of a list that pages: follows `next_cursor` until the last page, or until `max` items. */
export async function apiAllPages<T>(
  conn: ApiConnection,
  path: string,
  query: URLSearchParams = new URLSearchParams(),
  max = Number.POSITIVE_INFINITY,
): Promise<T[]> {
  const items: T[] = [];
  let cursor: string | null = null;
  do {
    const params = new URLSearchParams(query);
    if (cursor !== null) params.set('cursor', cursor);
    const qs = params.size > 0 ? `?${params.toString()}` : '';
    const page: { items: T[]; next_cursor?: string | null } = await apiRequest(conn, 'GET', `${path}${qs}`);
    items.push(...page.items);
    cursor = page.next_cursor ?? null;
  } while (cursor !== null && items.length < max);
  return items.slice(0, max);
}
