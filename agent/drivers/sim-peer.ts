import { z } from 'zod';
import { peerRequest } from '../peer-client.ts';

/**
 * How a sim destination learns what happens to a migration it prepared.
 *
 * QEMU's destination learns from the migration stream itself. The sim has no stream, so the
 * destination's prepare-incoming returns a uri that names its own notification endpoint:
 *   sim+http://127.0.0.1:9102/v1/internal/sim/migrations/<migrationId>?guest=<guestId>
 * The source posts events (started, postcopy, completed, failed, cancelled) to that endpoint as any
 * agent-to-agent call (peer-client.ts: the peer token, which the /v1 bearer auth accepts on /v1/internal). The
 * uri carries no secret, so it may appear in events and logs; the source agent sends only
 * to a registered host's agent that confirmed the migration (agent/migration-target.ts). Agents in the
 * same process skip HTTP through a registry of peers.
 */

export const simEventSchema = z.discriminatedUnion('event', [
  z.object({ event: z.literal('started'), guestId: z.string().min(1), sourceUrl: z.string() }),
  z.object({
    event: z.literal('postcopy'),
    guestId: z.string().min(1),
    /** Epoch ms from which the guest runs on the destination. */
    runningFromMs: z.number(),
    heartbeatSeconds: z.number().min(0),
    /** The source was paused at the switch-over: the guest arrives paused. */
    paused: z.boolean().optional(),
  }),
  z.object({
    event: z.literal('completed'),
    guestId: z.string().min(1),
    runningFromMs: z.number(),
    heartbeatSeconds: z.number().min(0),
    transferredBytes: z.number().min(0),
    totalBytes: z.number().min(0),
    downtimeMs: z.number().min(0),
    totalTimeMs: z.number().min(0),
    paused: z.boolean().optional(),
  }),
  z.object({
    event: z.enum(['failed', 'cancelled']),
    guestId: z.string().min(1),
    errorDesc: z.string().nullable(),
  }),
]);
export type SimEvent = z.infer<typeof simEventSchema>;

export interface SimPeerAddress {
  /** The endpoint to POST events to. */
  eventsUrl: string;
  /** The destination agent's base URL, the key of the in-process registry. */
  agentUrl: string;
  migrationId: string;
  guestId: string;
}

const EVENTS_PATH = '/v1/internal/sim/migrations/';

export function simUri(agentUrl: string, migrationId: string, guestId: string): string {
  const base = new URL(agentUrl);
  return `sim+${base.protocol}//${base.host}${EVENTS_PATH}${encodeURIComponent(migrationId)}?guest=${encodeURIComponent(guestId)}`;
}

/** null when the uri is not a sim uri of this shape. */
export function parseSimUri(uri: string): SimPeerAddress | null {
  if (!uri.startsWith('sim+http://') && !uri.startsWith('sim+https://')) return null;
  let url: URL;
  try {
    url = new URL(uri.slice('sim+'.length));
  } catch {
    return null;
  }
  if (!url.pathname.startsWith(EVENTS_PATH)) return null;
  const migrationId = decodeURIComponent(url.pathname.slice(EVENTS_PATH.length));
  const guestId = url.searchParams.get('guest');
  if (migrationId === '' || guestId === null || guestId === '') return null;
  return {
    eventsUrl: `${url.protocol}//${url.host}${url.pathname}/events`,
    agentUrl: `${url.protocol}//${url.host}`,
    migrationId,
    guestId,
  };
}

/** Receives events for migrations this agent prepared; implemented by the sim driver. */
export interface SimEventReceiver {
  receiveSimEvent(migrationId: string, event: SimEvent): Promise<void>;
}

const inProcessPeers = new Map<string, SimEventReceiver>();

export function registerInProcessPeer(agentUrl: string, receiver: SimEventReceiver): () => void {
  const key = new URL(agentUrl).origin;
  inProcessPeers.set(key, receiver);
  return () => {
    if (inProcessPeers.get(key) === receiver) inProcessPeers.delete(key);
  };
}

/** `credential`: what this agent presents to its peers (see peer-client.ts). */
export async function sendSimEvent(
  peer: SimPeerAddress,
  event: SimEvent,
  credential: string,
  timeoutMs = 5000,
): Promise<void> {
  const local = inProcessPeers.get(new URL(peer.agentUrl).origin);
  if (local !== undefined) {
    await local.receiveSimEvent(peer.migrationId, event);
    return;
  }
  const reply = await peerRequest(peer.eventsUrl, credential, { method: 'POST', body: event, timeoutMs });
  if (reply.status < 200 || reply.status >= 300) {
    throw new Error(`destination answered ${reply.status}: ${JSON.stringify(reply.body).slice(0, 200)}`);
  }
}
