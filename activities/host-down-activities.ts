import type { AgentCredentials } from './agent-credentials.ts';
import type { Client } from '@temporalio/client';
import { eq } from 'drizzle-orm';
import type { Db } from '../db/client.ts';
import { findHost } from '../db/inventory.ts';
import { activeMigrationOfGuest } from '../db/migration-store.ts';
import { guests } from '../db/schema.ts';
import { clusterMigrationConfig } from '../db/settings-store.ts';
import { recordRunMigration } from '../api/pending-migration.ts';
import { holdsLiveCopy } from '../domain/cold-migration.ts';
import {
  decideHostDownRescues,
  type HostLossCause,
  type RescueDecision,
  type ResiliencePolicy,
} from '../domain/host-down.ts';
import { planEvacuation, type EvacuationStep } from '../domain/evacuation.ts';
import { returnedCopyAction } from '../domain/host-return.ts';
import type { Requester } from '../domain/requester.ts';
import { coldMigrationWorkflowId, liveMigrationWorkflowId } from '../domain/workflow-ids.ts';
import { AgentClient } from './agent-client.ts';
import { AGENT_PROBE_TIMEOUT_MS } from './source-reach.ts';
import { agentCall } from './agent-errors.ts';

export interface HostDownDeps {
  db: Db;
  agentCredentials: AgentCredentials;
  liveness: { onlineHostIds(): Promise<Set<string>> };
  temporal?: Client;
}

export interface LostHostProbe {
  hostName: string;
  /** The host holds a lease again: it came back, nothing is to be rescued. */
  leaseBack: boolean;
  agentAnswers: boolean;
  /** Guests of which the answering agent holds a live copy; empty when it does not answer. */
  liveGuestIds: string[];
}

export interface ReturnReconciliation {
  removed: { guestId: string; name: string; wasLive: boolean }[];
  restarted: { guestId: string; name: string }[];
  left: { guestId: string; name: string; reason: string }[];
}

export function hostDownActivities({ db, agentCredentials, liveness, temporal }: HostDownDeps) {
  return {
    /** Is the host really down? Its lease, and its agent if it answers, say. */
    async probeLostHost(hostId: string): Promise<LostHostProbe> {
      const host = await findHost(db, hostId);
      const hostName = host?.name ?? hostId;
      const leaseBack = (await liveness.onlineHostIds()).has(hostId);
      if (!host) return { hostName, leaseBack, agentAnswers: false, liveGuestIds: [] };
      const agent = new AgentClient(host.agentUrl, agentCredentials, AGENT_PROBE_TIMEOUT_MS);
      try {
        const { guests: held } = await agent.listGuests();
        return {
          hostName,
          leaseBack,
          agentAnswers: true,
          liveGuestIds: held.filter((g) => holdsLiveCopy(g.status)).map((g) => g.id),
        };
      } catch {
        return { hostName, leaseBack, agentAnswers: false, liveGuestIds: [] };
      }
    },

    /**
     * Who is rescued, by the cluster's resilience policy and the host's flags; a guest the answering agent
     * still runs is never rescued, whatever they say.
     */
    async planHostDownRescues(input: {
      hostId: string;
      cause: HostLossCause;
      liveGuestIds: string[];
    }): Promise<{ policy: ResiliencePolicy; decisions: RescueDecision[] }> {
      const host = await findHost(db, input.hostId);
      if (!host) return { policy: 'none', decisions: [] };
      const config = await clusterMigrationConfig(db, host.clusterId);
      const placed = await db.select().from(guests).where(eq(guests.hostId, host.id));
      const decisions = decideHostDownRescues({
        policy: config.resiliencePolicy,
        cause: input.cause,
        host,
        guests: placed,
      });
      const live = new Set(input.liveGuestIds);
      return {
        policy: config.resiliencePolicy,
        decisions: decisions.map((d) =>
          d.move && live.has(d.guestId)
            ? { ...d, move: false, reason: 'its agent answers and still runs it: not lost' }
            : d,
        ),
      };
    },

    /**
     * The row of a migration a host-level run starts (a rescue, an evacuation's move), once per run: a retry finds
     * its own. Refused when the guest left the host meanwhile or another migration of it is active.
     */
    async recordHostMigration(input: {
      runKey: string;
      hostId: string;
      guestId: string;
      guestName: string;
      kind: 'live' | 'cold' | 'rescue';
      trigger: 'host-down' | 'maintenance';
      options: Record<string, unknown>;
      /** Who asked, or the trigger (`host-down:<host>`); the workflow always passes it. */
      requestedBy?: Requester;
      /** The child run's id as the workflow starts it; absent in runs from before ids carried names. */
      workflowId?: string;
    }): Promise<{ migrationId: string } | { refused: string }> {
      if (!temporal) throw new Error('recordHostMigration needs a Temporal client');
      return recordRunMigration(db, temporal, { id: input.guestId, name: input.guestName }, input.runKey, {
        kind: input.kind,
        sourceHostId: input.hostId,
        trigger: input.trigger,
        options: input.options,
        requestedBy: input.requestedBy ?? null,
        workflowId:
          input.workflowId ??
          (input.kind === 'live'
            ? liveMigrationWorkflowId(input.guestId)
            : coldMigrationWorkflowId(input.guestId)),
      });
    },

    /** How each guest of a host entering maintenance leaves it, in the order the moves start. */
    async planHostEvacuation(hostId: string): Promise<{ hostName: string; steps: EvacuationStep[] }> {
      const host = await findHost(db, hostId);
      if (!host) return { hostName: hostId, steps: [] };
      const placed = await db.select().from(guests).where(eq(guests.hostId, host.id));
      return { hostName: host.name, steps: planEvacuation(placed) };
    },

    /**
     * A host that holds a lease again: the guests it still has that the inventory places elsewhere (rescued while
     * it was gone) are destroyed there, and its own guests that should run but were fenced start again. A guest
     * with a migration in flight is left to that migration.
     */
    async reconcileReturnedHost(hostId: string): Promise<ReturnReconciliation> {
      const host = await findHost(db, hostId);
      if (!host) return { removed: [], restarted: [], left: [] };
      const agent = new AgentClient(host.agentUrl, agentCredentials);
      const { guests: held } = await agentCall(() => agent.listGuests());
      const result: ReturnReconciliation = { removed: [], restarted: [], left: [] };
      for (const copy of held) {
        const [row] = await db.select().from(guests).where(eq(guests.id, copy.id));
        const decision = returnedCopyAction({
          hostId,
          copyState: copy.status,
          placed: row ?? null,
          migrationInFlight: row !== undefined && (await activeMigrationOfGuest(db, copy.id)) !== undefined,
        });
        const name = row?.name ?? copy.name;
        if (decision.action === 'leave')
          result.left.push({ guestId: copy.id, name, reason: decision.reason });
        if (decision.action === 'remove') {
          await agentCall(() => agent.destroyGuest(copy.id));
          result.removed.push({ guestId: copy.id, name, wasLive: holdsLiveCopy(copy.status) });
        }
        if (decision.action === 'restart') {
          await agentCall(() => agent.startGuest(copy.id));
          result.restarted.push({ guestId: copy.id, name });
        }
      }
      return result;
    },
  };
}
