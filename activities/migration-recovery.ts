import type { AgentCredentials } from './agent-credentials.ts';
import { Context } from '@temporalio/activity';
import {
  noMigrationStatus,
  type GuestRunState,
  type MigrationStatus,
  type MigrationStatusName,
} from '../domain/agent-contract.ts';
import { isSourceSettled } from '../domain/migration-recovery.ts';
import { AgentClient } from './agent-client.ts';
import { agentCall, whenUnknownHere } from './agent-errors.ts';

/** Between two reads of a source whose cancel has not landed yet. */
const SETTLE_POLL_MS = 200;

/**
 * The agent calls of a rollback. Each reads or names the real state: a cancel that lands as QEMU completes
 * is seen as completed, never assumed cancelled; resume and destroy name the state they expect, so the
 * agent refuses them if it changed meanwhile.
 */
export function recoveryActivities(deps: { agentCredentials: AgentCredentials }) {
  const agent = (url: string, timeoutMs?: number) => new AgentClient(url, deps.agentCredentials, timeoutMs);

  /** Cancels the source's migration if it still runs and waits until QEMU settles. */
  const settle = async (input: { agentUrl: string; guestId: string; migrationId: string }) => {
    const ctx = Context.current();
    const client = agent(input.agentUrl, 10_000);
    let cancelSent = false;
    for (;;) {
      const status = await agentCall(() =>
        client.migrationStatus(input.guestId).catch(whenUnknownHere(null)),
      );
      if (status === null) return noMigrationStatus();
      if (status.migrationId !== input.migrationId || isSourceSettled(status)) return status;
      if (!cancelSent && status.status !== 'cancelling') {
        // The answer is a sample like any other: the loop reads QEMU again rather than trusting it.
        await agentCall(() => client.cancelMigration(input.guestId));
        cancelSent = true;
      }
      ctx.heartbeat({ status: status.status });
      await ctx.sleep(SETTLE_POLL_MS);
    }
  };

  const guestState = (agentUrl: string, guestId: string): Promise<GuestRunState | null> =>
    agentCall(() =>
      agent(agentUrl)
        .getGuest(guestId)
        .then((g) => g.status)
        .catch(whenUnknownHere(null)),
    );

  return {
    /**
     * Cancels the source's migration if it still runs and waits until QEMU settles: cancelled, failed,
     * completed (the cancel came too late) or post-copy (too late to go back). Returns what QEMU says.
     */
    async settleSourceMigration(input: {
      agentUrl: string;
      guestId: string;
      migrationId: string;
      destinationAgentUrl?: string;
    }): Promise<MigrationStatus & { destinationState?: GuestRunState | null }> {
      const status = await settle(input);
      if (!input.destinationAgentUrl) return status;
      // Read after the source settled: a destination that runs the guest by now has the whole of it. An
      // unreachable destination leaves the source's word alone (a rollback never destroys a running copy).
      const destinationState = await guestState(input.destinationAgentUrl, input.guestId).catch(
        () => undefined,
      );
      return destinationState === undefined ? status : { ...status, destinationState };
    },

    /** The guest's run state on a host, or null when the host does not know it. */
    async readGuestState(input: { agentUrl: string; guestId: string }): Promise<GuestRunState | null> {
      return guestState(input.agentUrl, input.guestId);
    },

    /** Destroys the destination's copy only while it is in the state the caller saw (the agent checks). */
    async destroyDestinationGuest(input: {
      agentUrl: string;
      guestId: string;
      migrationId: string;
      expectState?: GuestRunState;
    }): Promise<void> {
      await agentCall(() =>
        agent(input.agentUrl)
          .cleanup(input.guestId, {
            migrationId: input.migrationId,
            role: 'destination',
            ...(input.expectState ? { expectState: input.expectState } : {}),
          })
          .catch(whenUnknownHere({ cleaned: false })),
      );
    },

    /** A kept destination (keep_dest_guest_on_failed) must not run beside the source: it is paused. */
    async pauseGuestOn(input: { agentUrl: string; guestId: string }): Promise<void> {
      await agentCall(() => agent(input.agentUrl).pauseGuest(input.guestId));
    },

    /**
     * Resumes the source. Naming the migration and the status seen lets the agent refuse a source whose
     * migration completed behind our back, or that went through post-copy (its memory is stale for good).
     */
    async resumeSourceGuest(input: {
      agentUrl: string;
      guestId: string;
      migrationId: string;
      expectMigrationStatus: MigrationStatusName;
    }): Promise<void> {
      await agentCall(() =>
        agent(input.agentUrl).resumeGuest(input.guestId, {
          migrationId: input.migrationId,
          expectMigrationStatus: input.expectMigrationStatus,
        }),
      );
    },
  };
}
