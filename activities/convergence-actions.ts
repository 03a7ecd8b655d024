import type { ConvergenceAction } from '../domain/convergence/types.ts';
import type { AgentClient } from './agent-client.ts';
import { agentCall } from './agent-errors.ts';

/** What is in force on the source after the actions taken so far. */
export interface AppliedState {
  downtimeMs: number;
  bandwidthBytes: number;
  pausedGuest: boolean;
  postCopyStarted: boolean;
  abortReason: string | null;
}

/** Carries out one engine action on the source agent; the decision itself was made in domain/convergence. */
export async function applyConvergenceAction(
  agent: AgentClient,
  guestId: string,
  action: ConvergenceAction,
  applied: AppliedState,
): Promise<AppliedState> {
  switch (action.type) {
    case 'set-downtime':
      await agentCall(() => agent.setMigrationParameters(guestId, { downtimeLimitMs: action.downtimeMs }));
      return { ...applied, downtimeMs: action.downtimeMs };
    case 'set-bandwidth':
      await agentCall(() =>
        agent.setMigrationParameters(guestId, { maxBandwidthBytes: action.bandwidthBytes }),
      );
      return { ...applied, bandwidthBytes: action.bandwidthBytes };
    case 'raise-throttle':
      await agentCall(() =>
        agent.setMigrationParameters(guestId, { cpuThrottleIncrement: action.cpuThrottleIncrement }),
      );
      return applied;
    case 'start-post-copy':
      await agentCall(() => agent.startPostCopy(guestId));
      return { ...applied, postCopyStarted: true };
    case 'pause-guest':
      await agentCall(() => agent.pauseGuest(guestId));
      return { ...applied, pausedGuest: true };
    case 'abort':
      await agentCall(() => agent.cancelMigration(guestId));
      return { ...applied, abortReason: action.reason };
  }
}
