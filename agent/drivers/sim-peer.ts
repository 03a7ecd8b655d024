import { timingSafeEqual } from 'node:crypto';
import { z } from 'zod';

/**
 * How a sim destination learns what happens to a migration it prepared.
 *
 * QEMU's destination learns from the migration stream itself. The sim has no stream, so the
 * destination's prepare-incoming returns a uri that names its own notification endpoint plus a
 * per-migration secret:
 *   sim+http://127.0.0.1:9102/v1/internal/sim/migrations/<migrationId>?guest=<guestId>&key=<secret>
 * The source posts events (started, postcopy, completed, failed, cancelled) to that endpoint with
 * `Authorization: Bearer <secret>`. The secret, not the agent token, authenticates: the source
 * agent never holds the destination's token, and only whoever got the uri from prepare-incoming
 * can drive that one migration. Agents in the same process skip HTTP through a registry of peers.
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
  key: string;
}

const EVENTS_PATH = '/v1/internal/sim/migrations/';

export function simUri(agentUrl: string, migrationId: string, guestId: string, key: string): string {
  const base = new URL(agentUrl);
  const query = new URLSearchParams({ guest: guestId, key });
  return `sim+${base.protocol}//${base.host}${EVENTS_PATH}${encodeURIComponent(migrationId)}?${query.toString()}`;
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
  const key = url.searchParams.get('key');
  if (migrationId === '' || guestId === null || key === null) return null;
  return {
    eventsUrl: `${url.protocol}//${url.host}${url.pathname}/events`,
    agentUrl: `${url.protocol}//${url.host}`,
    migrationId,
    guestId,
    key,
  };
}

export function sameSecret(expected: string, given: string): boolean {
  const a = Buffer.from(expected);
  const b = Buffer.from(given);
  return a.length === b.length && timingSafeEqual(a, b);
}

/** Receives events for migrations this agent prepared; implemented by the sim driver. */
export interface SimEventReceiver {
  receiveSimEvent(migrationId: string, key: string, event: SimEvent): Promise<void>;
}

const inProcessPeers = new Map<string, SimEventReceiver>();

export function registerInProcessPeer(agentUrl: string, receiver: SimEventReceiver): () => void {
  const key = new URL(agentUrl).origin;
  inProcessPeers.set(key, receiver);
  return () => {
    if (inProcessPeers.get(key) === receiver) inProcessPeers.delete(key);
  };
}

export async function sendSimEvent(peer: SimPeerAddress, event: SimEvent, timeoutMs = 5000): Promise<void> {
  const local = inProcessPeers.get(new URL(peer.agentUrl).origin);
  if (local !== undefined) {
    await local.receiveSimEvent(peer.migrationId, peer.key, event);
    return;
  }
  const response = await fetch(peer.eventsUrl, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${peer.key}` },
    body: JSON.stringify(event),
    signal: AbortSignal.timeout(timeoutMs),
  });
  if (!response.ok) {
    throw new Error(`destination answered ${response.status}: ${(await response.text()).slice(0, 200)}`);
  }
}
