import { ApplicationFailure, CancellationScope, isCancellation } from '@temporalio/workflow';
import type { ColdMigrationStart } from '../activities/cold-migration-activities.ts';
import type { MigrationHost } from '../activities/host-snapshots.ts';
import {
  coldPlacementOptions,
  statusAfterColdMigration,
  type ColdMigrateOptions,
} from '../domain/cold-migration.ts';
import type { LiveMigrationTimings } from '../domain/live-migration.ts';
import type { GuestStatus } from '../domain/guest-status.ts';
import type { Caller, CheckResult } from '../domain/prechecks.ts';
import { failureReason } from './failure-reason.ts';
import { agentCalls, diskCopyFor, durable, quick } from './live-migrate-activities.ts';
import { openMigrationRun } from './migration-run.ts';
import {
  endAtPrechecks,
  finishRollback,
  PrecheckError,
  reserveDestinationStep,
  takeMigrationSlot,
} from './migration-steps.ts';

export interface ColdMigrateInput {
  migrationId: string;
  guestId: string;
  options: ColdMigrateOptions;
  caller: Caller;
  timings: LiveMigrationTimings;
}

export interface ColdMigrateResult {
  migrationId: string;
  destination: string;
  started: boolean;
}

/**
 * A cold (stopped guest) or rescue (source host down) migration as a saga on the same steps as a live one:
 * pre-checks, reserve, slot, then define the guest on the destination (its shared disks are the same files),
 * commit, remove it from the source, and start it when asked. Before the commit every step undoes itself; from
 * the commit on the destination owns the guest and every step retries until done.
 */
export async function coldMigrate(input: ColdMigrateInput): Promise<ColdMigrateResult> {
  const { migrationId, guestId, options, timings } = input;
  const run = openMigrationRun(migrationId, timings);
  const { saga, view, enterPhase, event } = run;
  const kind = options.rescueMode ? 'rescue' : 'cold migration';

  let start: ColdMigrationStart;
  let destination: MigrationHost;
  let checks: CheckResult[];
  try {
    await enterPhase('prechecks');
    const planned = await quick.planColdMigration({ migrationId, guestId, options, caller: input.caller });
    if (!planned.ok) throw new PrecheckError(planned.reason, planned.failures, planned.checks);
    start = planned;
    const reserved = await reserveDestinationStep(run, {
      guestId,
      sourceHostId: start.source.id,
      options: coldPlacementOptions(options),
    });
    destination = reserved.host;
    checks = [...planned.checks, ...reserved.checks];
  } catch (err) {
    return await endAtPrechecks(run, err);
  }
  await run.destinationChosen(destination);

  try {
    try {
      await takeMigrationSlot(run, {
        clusterId: start.source.clusterId,
        sourceHostId: start.source.id,
        destinationHostId: destination.id,
        limits: start.limits,
        queueTimeoutMs: start.queueTimeoutMs,
        checks,
      });
      await enterPhase('preparing', { destinationHostId: destination.id, checks });
      saga.add('restore guest status', () =>
        quick.setGuestStatus({ guestId, status: start.statusBefore as GuestStatus, error: null }),
      );
      await quick.setGuestStatus({ guestId, status: 'migrating', error: null });
      // Registered before the call: a define that fails half-way still leaves a guest on the destination.
      saga.add('clean the destination', () =>
        durable.removeGuestFrom({ agentUrl: destination.agentUrl, guestId }),
      );
      await agentCalls.defineGuestOn({ agentUrl: destination.agentUrl, spec: start.spec });
      await copyLocalDisks();
    } catch (err) {
      const cancelled = isCancellation(err);
      const reason = cancelled ? 'cancelled by operator' : failureReason(err);
      view.error = reason;
      await CancellationScope.nonCancellable(async () => {
        await enterPhase('rolling-back', { error: reason });
        await finishRollback(run, reason, cancelled, `guest stays on ${start.source.name}`);
      });
      if (cancelled) throw err;
      throw ApplicationFailure.nonRetryable(reason, 'ColdMigrationFailed');
    }
    return await CancellationScope.nonCancellable(finish);
  } finally {
    await saga.compensate();
  }

  /**
   * Each local disk: exported read-only over NBD by the source, copied into the destination's image. The source
   * stays stopped meanwhile (the guest is `migrating`: the API refuses to start it, the agent to export a live one).
   */
  async function copyLocalDisks() {
    const local = start.spec.disks.filter((d) => d.storage === 'local');
    if (options.rescueMode || local.length === 0) return;
    await enterPhase('copying');
    const copying = diskCopyFor(timings);
    // Over TLS the export admits only the destination's certificate and the import checks the source's.
    const tls = start.tls ?? false;
    for (const [index, disk] of local.entries()) {
      const where = { agentUrl: start.source.agentUrl, guestId, diskId: disk.id };
      saga.add(`stop export ${disk.id}`, () => durable.stopLocalDiskExport(where));
      const nbdUri = await agentCalls.exportLocalDisk({
        ...where,
        ...(tls ? { tls, destinationHost: destination.name } : {}),
      });
      const copied = await copying.copyLocalDisk({
        migrationId,
        guestId,
        diskId: disk.id,
        sourceAgentUrl: start.source.agentUrl,
        destinationAgentUrl: destination.agentUrl,
        nbdUri,
        ...(tls ? { tls, tlsHostname: start.source.name } : {}),
        index,
        count: local.length,
        pollIntervalMs: timings.pollIntervalMs,
      });
      await event(
        'disk_copied',
        `local disk ${disk.id} copied to ${destination.name}${tls ? ' over TLS' : ''}`,
        {
          ...copied,
          tls,
        },
      );
      await durable.stopLocalDiskExport(where);
      saga.forget(`stop export ${disk.id}`);
    }
  }

  /** Past the commit the destination owns the guest: every step retries until it is done. */
  async function finish(): Promise<ColdMigrateResult> {
    await enterPhase('committing');
    await durable.commitColdMigration({
      migrationId,
      guestId,
      destinationHostId: destination.id,
      status: 'ready',
    });
    saga.forget('clean the destination');
    saga.forget('release reservation');
    saga.forget('restore guest status');
    await enterPhase('cleaning');
    if (options.rescueMode) {
      // The source is down and fenced: its stale copy is removed when it comes back, before it is ready.
      await event(
        'source_cleanup_deferred',
        `source ${start.source.name} is down: its copy is removed when it returns`,
      );
    } else {
      await durable.removeGuestFrom({ agentUrl: start.source.agentUrl, guestId });
    }
    await saga.compensate();
    let started = false;
    if (options.autoStart) {
      try {
        await agentCalls.startGuestOn({ agentUrl: destination.agentUrl, guestId });
        await durable.setGuestStatus({ guestId, status: statusAfterColdMigration(true), error: null });
        started = true;
      } catch (err) {
        const reason = `start on ${destination.name} failed: ${failureReason(err)}`;
        await durable.setGuestStatus({ guestId, status: 'ready', error: reason });
        await event('start_failed', reason, {}, 'error');
      }
    }
    await event(
      'completed',
      `${kind}: guest is on ${destination.name}${started ? ' and running' : ', stopped'}`,
      { started, rescue: options.rescueMode },
    );
    await enterPhase('completed');
    return { migrationId, destination: destination.name, started };
  }
}
