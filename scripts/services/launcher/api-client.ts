/** The few API calls the launcher makes; the CLI (cli/) is the real client. */
export class LauncherApi {
  constructor(
    readonly baseUrl: string,
    private readonly token: string,
  ) {}

  async request(method: string, path: string, body?: unknown): Promise<{ status: number; json: unknown }> {
    const response = await fetch(`${this.baseUrl}${path}`, {
      method,
      headers: {
        authorization: `Bearer ${this.token}`,
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(15_000),
    });
    const text = await response.text();
    let json: unknown = null;
    try {
      json = text ? JSON.parse(text) : null;
    } catch {
      json = text;
    }
    return { status: response.status, json };
  }

  async get(path: string): Promise<unknown> {
    const { status, json } = await this.request('GET', path);
    if (status !== 200) throw new Error(`GET ${path}: ${status} ${JSON.stringify(json)}`);
    return json;
  }
}

export interface HostSummary {
  name: string;
  status: string;
  agentUrl?: string;
}

export interface ServerSummary {
  name: string;
  status: string;
  live?: { status?: string; heartbeat?: { counter: number } | null } | null;
}

/** Every host, following the list's cursor. */
export async function listHosts(api: LauncherApi): Promise<HostSummary[]> {
  const hosts: HostSummary[] = [];
  let cursor: string | null = null;
  do {
    const query: string = cursor === null ? '' : `?cursor=${encodeURIComponent(cursor)}`;
    const page = (await api.get(`/v1/hosts${query}`)) as {
      items?: HostSummary[];
      next_cursor?: string | null;
    };
    hosts.push(...(page.items ?? []));
    cursor = page.next_cursor ?? null;
  } while (cursor !== null);
  return hosts;
}

/** The server, or null on 404. */
export async function findServer(api: LauncherApi, name: string): Promise<ServerSummary | null> {
  const { status, json } = await api.request('GET', `/v1/servers/${encodeURIComponent(name)}`);
  if (status === 404) return null;
  if (status !== 200) throw new Error(`GET /v1/servers/${name}: ${status} ${JSON.stringify(json)}`);
  return json as ServerSummary;
}
