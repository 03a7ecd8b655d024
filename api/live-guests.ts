import type { AgentCredentials } from '../activities/agent-credentials.ts';
import type { Host } from '../db/schema.ts';
import { AgentClient } from '../activities/agent-client.ts';
import type { LiveGuest } from './views.ts';

const LIVE_STATE_TIMEOUT_MS = 2_000;
/** Stands for every guest of a host whose agent did not answer. */
const ANY_GUEST = '*';

/** Asks each host's agent for its guests at once; a slow or dead agent costs at most the timeout. */
export async function liveGuestsByHost(
  hosts: Host[],
  agentCredentials: AgentCredentials,
): Promise<Map<string, Map<string, LiveGuest>>> {
  const result = new Map<string, Map<string, LiveGuest>>();
  await Promise.all(
    hosts.map(async (host) => {
      const perGuest = new Map<string, LiveGuest>();
      try {
        const { guests } = await new AgentClient(
          host.agentUrl,
          agentCredentials,
          LIVE_STATE_TIMEOUT_MS,
        ).listGuests();
        for (const state of guests) perGuest.set(state.id, { reachable: true, state });
        result.set(host.id, perGuest);
      } catch (err) {
        perGuest.set(ANY_GUEST, { reachable: false, error: (err as Error).message });
        result.set(host.id, perGuest);
      }
    }),
  );
  return result;
}

export function liveGuestOn(
  live: Map<string, Map<string, LiveGuest>>,
  hostId: string,
  guestId: string,
): LiveGuest | undefined {
  const perGuest = live.get(hostId);
  if (!perGuest) return undefined;
  return perGuest.get(guestId) ?? perGuest.get(ANY_GUEST) ?? { reachable: true, state: null };
}
