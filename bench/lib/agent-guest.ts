import type { GuestState } from '../../domain/agent-contract.ts';
import type { Orchestrator } from '../live-migrate/stack.ts';

/**
 * A guest as its host's agent sees it now, or null when that host runs no agent or does not know the guest. The
 * benchmarks ask the agent for a heartbeat that must advance: the API's view comes from the agents' reports,
 * where a heartbeat alone is refreshed only every few report intervals.
 */
export async function guestOnAgent(
  stack: Pick<Orchestrator, 'agents' | 'agentToken'>,
  host: string,
  guestId: string,
): Promise<GuestState | null> {
  const agent = stack.agents.get(host);
  if (!agent) return null;
  const res = await fetch(`${agent.url}/v1/guests/${guestId}`, {
    headers: { authorization: `Bearer ${stack.agentToken}` },
  }).catch(() => null);
  if (!res?.ok) return null;
  return (await res.json()) as GuestState;
}
