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
