import type { AgentCredentials } from './agent-credentials.ts';
import { Context } from '@temporalio/activity';
import type { Client } from '@temporalio/client';
import type { Db } from '../db/client.ts';
import { recordEvent, setGuestStatus } from '../db/inventory.ts';
import { commitGuestMove, releaseReservation, setMigrationPhase } from '../db/migration-store.ts';
import type { MigrationPhase } from '../domain/migration-phases.ts';
import {
  GUEST_PING_TIMEOUT_MS,
  type GuestSpec,
  type MigrationStatus,
  type PrepareIncomingResult,
  type StartMigrationRequest,
} from '../domain/agent-contract.ts';
import type { CheckResult } from '../domain/prechecks.ts';
import { heartbeatWhile } from './heartbeat-while.ts';
import { AgentCallError, AgentClient } from './agent-client.ts';
import { forceCompleteAction } from '../domain/convergence/engine.ts';
import {
  chooseMigrationNetwork,
  hasMigrationNetwork,
  type MigrationNetworkChoice,
  type NetworkEndpoint,
} from '../domain/migration-network.ts';
import { agentCall, whenUnknownHere } from './agent-errors.ts';
import { monitorMigration, type MonitorInput, type MonitorResult } from './monitor-migration.ts';

export interface MigrationActivityDeps {
  db: Db;
  agentCredentials: AgentCredentials;
  liveness: { onlineHostIds(): Promise<Set<string>> };
  temporal?: Client;
}

/** The destination's serial log is read this often while waiting for the guest's next heartbeat. */
const ALIVE_POLL_MS = 100;

export interface AliveCheck {
  alive: boolean;
  firstCounter: number | null;
  lastCounter: number | null;
  status: string;
  /**
   * What proved the guest alive: its guest agent answered guest-ping, or its heartbeat counter advanced.
   * Absent when not alive, and in the results of older workers.
   */
  via?: 'guest-agent' | 'heartbeat';
}

export function migrationActivities(deps: MigrationActivityDeps) {
  const { db, agentCredentials } = deps;
  const agent = (url: string) => new AgentClient(url, agentCredentials);

  return {
    async releaseDestination(migrationId: string): Promise<void> {
      await releaseReservation(db, migrationId);
    },

    async setMigrationPhase(input: {
      migrationId: string;
      phase: MigrationPhase;
      destinationHostId?: string;
      error?: string;
      checks?: CheckResult[];
      resolvedPolicy?: Record<string, unknown>;
    }): Promise<void> {
      await setMigrationPhase(db, input.migrationId, input.phase, {
        ...(input.resolvedPolicy !== undefined ? { resolvedPolicy: input.resolvedPolicy } : {}),
        ...(input.destinationHostId !== undefined ? { destinationHostId: input.destinationHostId } : {}),
        ...(input.error !== undefined ? { error: input.error } : {}),
        ...(input.checks !== undefined ? { checks: input.checks.map((c) => ({ ...c })) } : {}),
      });
    },

    async recordMigrationEvent(input: {
      migrationId: string;
      type: string;
      level?: 'info' | 'warning' | 'error';
      message: string;
      data?: Record<string, unknown>;
    }): Promise<void> {
      await recordEvent(db, { subjectKind: 'migration', subjectId: input.migrationId, ...input });
    },

    async markGuestMigrating(guestId: string): Promise<void> {
      await setGuestStatus(db, guestId, 'migrating');
    },

    async markGuestRunning(guestId: string): Promise<void> {
      await setGuestStatus(db, guestId, 'running');
    },

    /** Neither host holds a whole guest (post-copy failed): the row says so until an operator steps in. */
    async markGuestError(input: { guestId: string; error: string }): Promise<void> {
      await setGuestStatus(db, input.guestId, 'error', input.error);
    },

    async prepareDestination(input: {
      migrationId: string;
      agentUrl: string;
      spec: GuestSpec;
      /** Absent: the destination's QEMU starts and listens nowhere yet (a second prepare names the address). */
      listenAddress?: string;
      tls: boolean;
      postCopy: boolean;
      /** The source host's name: with TLS only its certificate is admitted. Absent in older histories. */
      sourceHost?: string;
    }): Promise<PrepareIncomingResult> {
      const { agentUrl, spec, ...request } = input;
      return heartbeatWhile(() =>
        agentCall(() => agent(agentUrl).prepareIncoming(spec.id, { ...request, spec })),
      );
    },

    async startSourceMigration(input: {
      agentUrl: string;
      guestId: string;
      request: StartMigrationRequest;
    }): Promise<MigrationStatus> {
      return heartbeatWhile(() =>
        agentCall(() => agent(input.agentUrl).startMigration(input.guestId, input.request)),
      );
    },

    async monitorMigration(input: MonitorInput): Promise<MonitorResult> {
      return monitorMigration(deps, input);
    },

    /** A source that no longer knows the guest (already cleaned, or its host lost it) has nothing left to clean. */
    async cleanupSource(input: { agentUrl: string; guestId: string; migrationId: string }) {
      await agentCall(() =>
        agent(input.agentUrl)
          .cleanup(input.guestId, { migrationId: input.migrationId, role: 'source' })
          .catch(whenUnknownHere({ cleaned: false })),
      );
    },

    /**
     * Which network the stream takes: can the source reach the destination on its migration address, and on
     * its management address? The
     * destination listens on the address under test and the source connects; nothing is sent anywhere if
     * the destination cannot even listen there.
     */
    async probeMigrationNetwork(input: {
      source: NetworkEndpoint & { agentUrl: string };
      destination: NetworkEndpoint & { agentUrl: string };
    }): Promise<{ choice: MigrationNetworkChoice; details: string[] }> {
      const details: string[] = [];
      const reaches = async (address: string): Promise<boolean> => {
        let port: number;
        try {
          port = (await agent(input.destination.agentUrl).networkListen(address)).port;
        } catch (err) {
          if (err instanceof AgentCallError && err.status === 409) {
            details.push(`${input.destination.name} cannot listen on ${address}: ${err.message}`);
            return false;
          }
          throw err;
        }
        const result = await agent(input.source.agentUrl).networkConnect(address, port);
        details.push(
          result.reachable
            ? `${input.source.name} reached ${address}:${port} in ${result.latencyMs} ms`
            : `${input.source.name} cannot reach ${address}:${port}: ${result.error}`,
        );
        return result.reachable;
      };
      return heartbeatWhile(async () => {
        const migration =
          hasMigrationNetwork(input.source, input.destination) && input.destination.migrationAddress !== null
            ? await reaches(input.destination.migrationAddress)
            : null;
        const management = await reaches(input.destination.address);
        return {
          choice: chooseMigrationNetwork(input.source, input.destination, { migration, management }),
          details,
        };
      });
    },

    /**
     * Alive means the guest itself executes on the destination, proven either way, whichever comes first:
     * - its guest agent answers guest-ping (QEMU Guest Agent Protocol, with a guest-sync of a fresh id
     *   first) while the destination says running: only a guest executing there can answer;
     * - its own heartbeat counter, which lives in guest memory, went past the last value the source printed
     *   before the switch-over (the paused source still has its serial log; without it, the counter must
     *   advance while we watch). This is the fallback for guests without a guest agent.
     * Read-only: asking again asks the same questions.
     */
    async verifyGuestAlive(input: {
      agentUrl: string;
      guestId: string;
      timeoutMs: number;
      pollIntervalMs: number;
      sourceAgentUrl?: string;
    }): Promise<AliveCheck> {
      const ctx = Context.current();
      const client = new AgentClient(input.agentUrl, agentCredentials, 5_000);
      // Read beside the first look at the destination: only the heartbeat fallback needs it.
      const sourceCounter: Promise<number | null> = input.sourceAgentUrl
        ? new AgentClient(input.sourceAgentUrl, agentCredentials, 5_000)
            .getGuest(input.guestId)
            .then((g) => g.heartbeat?.counter ?? null)
            .catch(() => null)
        : Promise.resolve(null);
      const deadline = Date.now() + input.timeoutMs;
      let firstCounter: number | null = null;
      let lastCounter: number | null = null;
      let status = 'unknown';
      while (Date.now() < deadline) {
        const [state, answered] = await Promise.all([
          // A destination that no longer knows the guest (its host was lost) is as dead as a silent one.
          agentCall(() => client.getGuest(input.guestId).catch(whenUnknownHere(null))),
          // No answer (no agent in the guest, an agent without the route, any error) leaves the heartbeat.
          client.guestPing(input.guestId, GUEST_PING_TIMEOUT_MS).then(
            (ping) => ping.answered,
            () => false,
          ),
        ]);
        if (state === null) return { alive: false, firstCounter, lastCounter, status: 'unknown here' };
        status = state.status;
        const counter = state.heartbeat?.counter ?? null;
        if (counter !== null) {
          firstCounter ??= (await sourceCounter) ?? counter;
          lastCounter = counter;
        }
        if (answered && state.status === 'running') {
          return { alive: true, firstCounter, lastCounter, status, via: 'guest-agent' };
        }
        if (
          counter !== null &&
          firstCounter !== null &&
          counter > firstCounter &&
          state.status === 'running'
        ) {
          return { alive: true, firstCounter, lastCounter, status, via: 'heartbeat' };
        }
        ctx.heartbeat({ firstCounter, lastCounter, status });
        await ctx.sleep(Math.min(input.pollIntervalMs, ALIVE_POLL_MS));
      }
      return { alive: false, firstCounter, lastCounter, status };
    },

    /** Operator force-complete: post-copy when allowed, else pause the guest so the copy finishes. */
    async forceCompleteMigration(input: {
      migrationId: string;
      agentUrl: string;
      guestId: string;
      postCopyAllowed: boolean;
    }): Promise<{ action: 'start-post-copy' | 'pause-guest' | 'none'; reason: string }> {
      const client = agent(input.agentUrl);
      const status = await agentCall(() => client.migrationStatus(input.guestId));
      if (status.migrationId !== input.migrationId || status.status !== 'active') {
        return { action: 'none', reason: `nothing to force: migration is ${status.status}` };
      }
      const action = forceCompleteAction({ postCopyAllowed: input.postCopyAllowed }, status);
      if (action.type === 'start-post-copy') await agentCall(() => client.startPostCopy(input.guestId));
      else await agentCall(() => client.pauseGuest(input.guestId));
      await recordEvent(db, {
        subjectKind: 'migration',
        subjectId: input.migrationId,
        type: 'force_complete',
        level: 'warning',
        message: action.reason,
        data: { action: action.type, sample: { ...status } },
      });
      return {
        action: action.type === 'start-post-copy' ? 'start-post-copy' : 'pause-guest',
        reason: action.reason,
      };
    },

    /** A guest left paused by a forced or policy pause runs again once it is on the destination. */
    async resumeGuestOn(input: { agentUrl: string; guestId: string }): Promise<void> {
      await agentCall(() => agent(input.agentUrl).resumeGuest(input.guestId));
    },

    async commitMigration(input: { migrationId: string; guestId: string; destinationHostId: string }) {
      await commitGuestMove(db, input);
    },
  };
}
