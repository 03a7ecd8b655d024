import type { AgentCredentials } from './agent-credentials.ts';
import { holdsLiveCopy, type SourceReach } from '../domain/cold-migration.ts';
import { AgentClient } from './agent-client.ts';

/** An agent silent for this long counts as unreachable (a rescue's pre-check, a host-down confirmation). */
export const AGENT_PROBE_TIMEOUT_MS = 3_000;

/** Asks a (possibly dead) source agent whether it answers and still holds a live copy of the guest. */
export async function probeSourceReach(
  agentUrl: string,
  agentCredentials: AgentCredentials,
  guestId: string,
): Promise<SourceReach> {
  const agent = new AgentClient(agentUrl, agentCredentials, AGENT_PROBE_TIMEOUT_MS);
  try {
    await agent.health();
  } catch {
    return { agentAnswers: false, guestLiveThere: false };
  }
  try {
    return { agentAnswers: true, guestLiveThere: holdsLiveCopy((await agent.getGuest(guestId)).status) };
  } catch (err) {
    // A 404 is a guest the agent does not have; any other failure leaves the doubt on the safe side.
    return { agentAnswers: true, guestLiveThere: (err as { status?: number }).status !== 404 };
  }
}
