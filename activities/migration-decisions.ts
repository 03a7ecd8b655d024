import { ApplicationFailure } from '@temporalio/activity';
import type { Db } from '../db/client.ts';
import { recordEvent } from '../db/inventory.ts';
import { reserveCapacity, setMigrationPhase } from '../db/migration-store.ts';
import { reservationOf } from '../db/reservations.ts';
import type { GuestSpec } from '../domain/agent-contract.ts';
import type { LiveMigrateOptions } from '../domain/live-migration.ts';
import { planLiveMigration, type LiveMigrationPlan } from '../domain/migration-plan.ts';
import { chooseDestination } from '../domain/placement.ts';
import {
  CPU_ALLOCATION_RATIO,
  failed,
  guestAndSourceChecks,
  type Caller,
  type CheckResult,
} from '../domain/prechecks.ts';
import { readPlacementContext, type MigrationHost } from './host-snapshots.ts';
import { guestMigrationSettings } from './migration-settings.ts';

/**
 * The decisions of a migration's start, taken here rather than in workflow code: an activity's result is
 * recorded in the history, so a replayed run keeps the plan, the host and the network it first chose even
 * after domain/placement.ts or the policies change.
 */
export interface DecisionDeps {
  db: Db;
  liveness: { onlineHostIds(): Promise<Set<string>> };
}

export type Verdict<T> =
  ({ ok: true } & T) | { ok: false; reason: string; failures: CheckResult[]; checks: CheckResult[] };

/** How many destinations are tried when a chosen one's capacity was taken between the read and the reservation. */
const MAX_RESERVATION_ATTEMPTS = 3;

function refusal(failures: CheckResult[], checks: CheckResult[]) {
  const reason = failures.map((f) => `${f.name}: ${f.message}`).join('; ') || 'source host not found';
  return { ok: false as const, reason: `pre-checks failed: ${reason}`, failures, checks };
}

export function decisionActivities(deps: DecisionDeps) {
  const { db } = deps;
  return {
    /** The guest and source pre-checks and the frozen plan (cluster config, policy, the request's options). */
    async planLiveMigration(input: {
      migrationId: string;
      guestId: string;
      options: LiveMigrateOptions;
      caller: Caller;
    }): Promise<
      Verdict<{ spec: GuestSpec; source: MigrationHost; plan: LiveMigrationPlan; checks: CheckResult[] }>
    > {
      const [context, resolved] = await Promise.all([
        readPlacementContext(db, deps.liveness, input.guestId),
        guestMigrationSettings(db, input.guestId),
      ]);
      if (!context || !resolved) {
        throw ApplicationFailure.nonRetryable(`guest ${input.guestId} not found`, 'NotFound');
      }
      // A reservation is made only after these checks passed: holding one, this is the same workflow task run
      // again after it was lost (read only when the answer matters: a first run never holds one).
      let ranBefore: boolean | undefined;
      const runAgain = async () => (ranBefore ??= (await reservationOf(db, input.migrationId)) !== undefined);
      const guest =
        context.guest.status === 'migrating' && (await runAgain())
          ? { ...context.guest, markedByThisMigration: true }
          : context.guest;
      const plan = planLiveMigration(resolved.settings, input.options, context.guest);
      await setMigrationPhase(db, input.migrationId, 'prechecks', {
        resolvedPolicy: {
          ...resolved.settings,
          explanation: resolved.selection.explanation,
          plan: { ...plan },
        },
      });
      const checks = guestAndSourceChecks({
        caller: input.caller,
        guest,
        source: context.source,
        options: input.options,
      });
      const failures = failed(checks);
      if (!context.source) return refusal(failures, checks);
      // Run again, the first verdict stands: what the first run began (a destination started, perhaps the copy)
      // is for the workflow to finish or roll back, not to abandon on a verdict changed in the seconds between.
      if (failures.length > 0 && !(await runAgain())) return refusal(failures, checks);
      return { ok: true, spec: context.spec, source: context.source, plan, checks };
    },

    /**
     * The scheduler's choice (or prefer_host through the same checks), reserved under a row lock; a host whose
     * capacity was taken meanwhile is dropped and the next one tried. A retry finds its own reservation.
     */
    async reserveDestination(input: {
      migrationId: string;
      guestId: string;
      sourceHostId: string;
      options: LiveMigrateOptions;
    }): Promise<Verdict<{ host: MigrationHost; checks: CheckResult[] }>> {
      const context = await readPlacementContext(db, deps.liveness, input.guestId);
      if (!context) throw ApplicationFailure.nonRetryable(`guest ${input.guestId} not found`, 'NotFound');
      const source = context.hosts.find((h) => h.id === input.sourceHostId);
      if (!source) throw ApplicationFailure.nonRetryable(`host ${input.sourceHostId} not found`, 'NotFound');
      const held = await reservationOf(db, input.migrationId);
      const heldHost = held && context.hosts.find((h) => h.id === held.hostId);
      if (heldHost) return { ok: true, host: heldHost, checks: [] };

      const { preferHost } = input.options;
      const preferred = preferHost
        ? context.hosts.find((h) => h.id === preferHost || h.name === preferHost)
        : undefined;
      if (preferHost && !preferred) {
        const missing: CheckResult = {
          name: 'destination_host_usable',
          ok: false,
          message: `prefer_host '${preferHost}' does not exist`,
          values: { host: preferHost },
        };
        return refusal([missing], [missing]);
      }
      let candidates = context.hosts;
      for (let attempt = 1; attempt <= MAX_RESERVATION_ATTEMPTS; attempt++) {
        const choice = chooseDestination(context.guest, source, candidates, input.options, preferred);
        if (!choice.ok) {
          const failures = choice.rejected.flatMap((r) => r.failures);
          return { ok: false, reason: choice.reason, failures, checks: failures };
        }
        const host = choice.destination as MigrationHost;
        const outcome = await reserveCapacity(db, {
          migrationId: input.migrationId,
          hostId: host.id,
          memoryMb: context.guest.memoryMb,
          vcpus: context.guest.vcpus,
          cpuAllocationRatio: CPU_ALLOCATION_RATIO,
        });
        if (outcome.reserved) return { ok: true, host, checks: choice.checks };
        await recordEvent(db, {
          subjectKind: 'migration',
          subjectId: input.migrationId,
          type: 'reservation_refused',
          message: `capacity on ${host.name} was taken meanwhile`,
          data: { ...outcome },
        });
        candidates = candidates.filter((h) => h.id !== host.id);
        if (preferred) break;
      }
      const failure: CheckResult = {
        name: 'destination_capacity',
        ok: false,
        message: 'capacity on the chosen destinations was taken by other migrations',
        values: { attempts: MAX_RESERVATION_ATTEMPTS },
      };
      return refusal([failure], [failure]);
    },
  };
}
