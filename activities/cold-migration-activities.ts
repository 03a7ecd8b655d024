import type { AgentCredentials } from './agent-credentials.ts';
import { ApplicationFailure } from '@temporalio/activity';
import type { Db } from '../db/client.ts';
import { commitGuestMove } from '../db/migration-store.ts';
import type { GuestSpec } from '../domain/agent-contract.ts';
import { coldMigrationChecks, type ColdMigrateOptions } from '../domain/cold-migration.ts';
import { failed, type Caller, type CheckResult } from '../domain/prechecks.ts';
import type { SlotLimits } from '../domain/slots.ts';
import { AgentClient } from './agent-client.ts';
import { agentCall } from './agent-errors.ts';
import { heartbeatWhile } from './heartbeat-while.ts';
import { probeSourceReach } from './source-reach.ts';
import { readPlacementContext, type MigrationHost } from './host-snapshots.ts';
import type { Verdict } from './migration-decisions.ts';
import { guestMigrationSettings } from './migration-settings.ts';

export interface ColdMigrationDeps {
  db: Db;
  agentCredentials: AgentCredentials;
  liveness: { onlineHostIds(): Promise<Set<string>> };
}

export interface ColdMigrationStart {
  spec: GuestSpec;
  source: MigrationHost;
  limits: SlotLimits;
  queueTimeoutMs: number;
  checks: CheckResult[];
  /** The guest's inventory status before the migration marked it migrating (a rollback restores it). */
  statusBefore: string;
  /** Local disks are copied over TLS (the resolved settings' tls). Absent in older histories: plain. */
  tls?: boolean;
}

export function coldMigrationActivities({ db, agentCredentials, liveness }: ColdMigrationDeps) {
  const agent = (url: string) => new AgentClient(url, agentCredentials);

  return {
    /** The guest and source pre-checks of a cold or rescue migration, and the limits it runs under. */
    async planColdMigration(input: {
      migrationId: string;
      guestId: string;
      options: ColdMigrateOptions;
      caller: Caller;
    }): Promise<Verdict<ColdMigrationStart>> {
      const context = await readPlacementContext(db, liveness, input.guestId);
      const resolved = await guestMigrationSettings(db, input.guestId);
      if (!context || !resolved) {
        throw ApplicationFailure.nonRetryable(`guest ${input.guestId} not found`, 'NotFound');
      }
      const reach =
        input.options.rescueMode && context.source
          ? await probeSourceReach(context.source.agentUrl, agentCredentials, input.guestId)
          : { agentAnswers: true, guestLiveThere: true };
      const checks = coldMigrationChecks({
        caller: input.caller,
        guest: context.guest,
        source: context.source,
        options: input.options,
        reach,
      });
      const failures = failed(checks);
      if (failures.length > 0 || !context.source) {
        const reason = failures.map((f) => `${f.name}: ${f.message}`).join('; ') || 'source host not found';
        return { ok: false, reason: `pre-checks failed: ${reason}`, failures, checks };
      }
      const { settings } = resolved;
      return {
        ok: true,
        spec: context.spec,
        source: context.source,
        limits: {
          perCluster: settings.parallelMigrationsPerCluster,
          outboundPerNode: settings.parallelOutboundMigrationsPerNode,
          inboundPerNode: settings.parallelInboundMigrationsPerNode,
        },
        queueTimeoutMs: settings.queueTimeout * 1000,
        checks,
        statusBefore: context.guest.status,
        tls: settings.tls,
      };
    },

    /** Defines the stopped guest on the destination (its shared disks are the same files). Idempotent. */
    async defineGuestOn(input: { agentUrl: string; spec: GuestSpec }): Promise<void> {
      await heartbeatWhile(() => agentCall(() => agent(input.agentUrl).defineGuest(input.spec)));
    },

    /** Removes the guest from a host that no longer owns it; its shared disks stay. Idempotent. */
    async removeGuestFrom(input: { agentUrl: string; guestId: string }): Promise<void> {
      await agentCall(() => agent(input.agentUrl).destroyGuest(input.guestId));
    },

    async startGuestOn(input: { agentUrl: string; guestId: string }): Promise<void> {
      await heartbeatWhile(() => agentCall(() => agent(input.agentUrl).startGuest(input.guestId)));
    },

    async commitColdMigration(input: {
      migrationId: string;
      guestId: string;
      destinationHostId: string;
      status: 'running' | 'ready';
    }): Promise<void> {
      await commitGuestMove(db, input);
    },
  };
}
