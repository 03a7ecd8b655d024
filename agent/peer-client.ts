/**
 * Every call one agent makes to another goes through peerRequest: the incoming-migration and export
 * confirmations (agent/migration-target.ts) and the sim's migration events (drivers/sim-peer.ts).
 *
 * The credential is a parameter: the fleet-wide peer token (AGENT_PEER_TOKEN, AgentOptions.peerToken),
 * which a peer accepts on these routes only (server.ts isPeerRoute), never its own host credential:
 * agents cannot hold each other's.
 */

export interface PeerReply {
  status: number;
  body: unknown;
}

export async function peerRequest(
  url: string,
  credential: string,
  init: { method?: 'GET' | 'POST'; body?: unknown; timeoutMs?: number } = {},
): Promise<PeerReply> {
  const response = await fetch(url, {
    method: init.method ?? 'GET',
    headers: {
      authorization: `Bearer ${credential}`,
      ...(init.body === undefined ? {} : { 'content-type': 'application/json' }),
    },
    body: init.body === undefined ? undefined : JSON.stringify(init.body),
    // An agent never redirects: the credential must not follow one anywhere.
    redirect: 'error',
    signal: AbortSignal.timeout(init.timeoutMs ?? 5_000),
  });
  const text = await response.text();
  let body: unknown = null;
  try {
    body = text === '' ? null : JSON.parse(text);
  } catch {
    body = text.slice(0, 200);
  }
  return { status: response.status, body };
}
