/** A small HTTP client for the agent contract, for tests. */
export interface AgentEndpoint {
  url: string;
  token: string;
}

export interface Reply<T = unknown> {
  status: number;
  body: T;
}

export async function call<T = unknown>(
  agent: AgentEndpoint,
  method: string,
  path: string,
  body?: unknown,
  token: string | null = agent.token,
): Promise<Reply<T>> {
  const headers: Record<string, string> = {};
  if (token !== null) headers.authorization = `Bearer ${token}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  const response = await fetch(`${agent.url}${path}`, {
    method,
    headers,
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await response.text();
  return { status: response.status, body: (text === '' ? null : JSON.parse(text)) as T };
}

/** Like call(), but fails the test unless the status is 200. */
export async function ok<T = unknown>(
  agent: AgentEndpoint,
  method: string,
  path: string,
  body?: unknown,
): Promise<T> {
  const reply = await call<T>(agent, method, path, body);
  if (reply.status !== 200) {
    throw new Error(`${method} ${path} answered ${reply.status}: ${JSON.stringify(reply.body)}`);
  }
  return reply.body;
}

/** Polls until `probe` returns a value that is not undefined, or fails with the last value seen. */
export async function eventually<T>(
  what: string,
  probe: () => Promise<T | undefined>,
  timeoutMs: number,
  intervalMs = 250,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown = null;
  for (;;) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch (error) {
      lastError = error;
    }
    if (Date.now() >= deadline) {
      throw new Error(
        `timed out after ${timeoutMs} ms waiting for ${what}${lastError ? `: ${String(lastError)}` : ''}`,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}
