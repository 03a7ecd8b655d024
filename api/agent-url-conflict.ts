import type { Db } from '../db/client.ts';
import { otherHostAtAgentUrl } from '../db/enrolment-store.ts';
import { ApiError } from './errors.ts';

/**
 * 409 when another host is registered at this agent URL: the workers find a host's credential by its URL, so two
 * hosts at one URL would make a call carry the wrong host's credential.
 */
export async function assertAgentUrlFree(
  db: Db,
  agentUrl: string,
  hostId: string,
  field: string,
): Promise<void> {
  const other = await otherHostAtAgentUrl(db, agentUrl, hostId);
  if (other)
    throw new ApiError(409, 'conflict', `agent_url ${agentUrl} is already host ${other.name}'s`, field);
}
