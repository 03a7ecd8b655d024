import {
  ApplicationFailure,
  CancellationScope,
  condition,
  getExternalWorkflowHandle,
  isCancellation,
  patched,
  workflowInfo,
} from '@temporalio/workflow';
import type { CheckResult } from '../domain/prechecks.ts';
import type { SlotLimits } from '../domain/slots.ts';
import { migrationSlotsWorkflowId } from '../domain/workflow-ids.ts';
import { failureReason } from './failure-reason.ts';
import type { MigrationHost } from '../activities/host-snapshots.ts';
import type { LiveMigrateOptions } from '../domain/live-migration.ts';
import { keepSlotLeaseFor } from './live-migrate-activities.ts';
import type { MigrationRun } from './migration-run.ts';
import { releaseSlotSignal } from './migration-slots-messages.ts';

/** The steps every kind of migration (live, cold, rescue) takes the same way, with their compensations. */

/** The patch that gives a slot back through an activity (a local one in runs with local steps). */
export const SLOT_RELEASED_BY_ACTIVITY = 'slot-released-by-activity';

/** A pre-check or the reservation refused the migration: the failed checks say why. */
export class PrecheckError extends Error {
  constructor(
    message: string,
    readonly failures: CheckResult[],
    readonly checks: CheckResult[],
  ) {
    super(message);
  }
}

/**
 * Ends a migration that failed before it had a destination: undo the reservation, record why (before the API
 * hears the verdict, so whoever reads the row next sees it failed), answer the API's precheck update, and fail
 * the run (or rethrow the cancellation).
 */
export async function endAtPrechecks(ctx: MigrationRun, err: unknown): Promise<never> {
  const reason = err instanceof PrecheckError ? err.message : failureReason(err);
  const failures = err instanceof PrecheckError ? err.failures : [];
  ctx.view.error = reason;
  await ctx.saga.compensate();
  await CancellationScope.nonCancellable(async () => {
    await ctx.event('precheck_failed', reason, failures.length > 0 ? { failures } : undefined, 'error');
    await ctx.enterPhase(isCancellation(err) ? 'cancelled' : 'failed', {
      error: reason,
      ...(err instanceof PrecheckError ? { checks: err.checks } : {}),
    });
  });
  ctx.answerPrechecks({ ok: false, reason, failures });
  if (isCancellation(err)) throw err;
  throw ApplicationFailure.nonRetryable(reason, 'PrecheckFailed');
}

/** The scheduler's choice reserved for this run, its release registered first; refused, a PrecheckError. */
export async function reserveDestinationStep(
  ctx: MigrationRun,
  request: { guestId: string; sourceHostId: string; options: LiveMigrateOptions },
): Promise<{ host: MigrationHost; checks: CheckResult[] }> {
  const { saga, migrationId } = ctx;
  saga.add('release reservation', () => ctx.steps.write.releaseDestination(migrationId));
  const reserved = await ctx.steps.decide.reserveDestination({ migrationId, ...request });
  if (!reserved.ok) throw new PrecheckError(reserved.reason, reserved.failures, reserved.checks);
  return reserved;
}

/**
 * The end of a rollback: run what is left of the saga, say what it could not undo, record the outcome (`where`
 * says where the guest stays) and enter the final phase.
 */
export async function finishRollback(
  ctx: MigrationRun,
  reason: string,
  cancelled: boolean,
  where: string,
): Promise<void> {
  const leftovers = await ctx.saga.compensate();
  if (leftovers.length > 0) {
    await ctx.event(
      'rollback_incomplete',
      `rollback left work undone: ${leftovers.join('; ')}`,
      { leftovers },
      'error',
    );
  }
  await ctx.event(cancelled ? 'cancelled' : 'failed', `${reason}; ${where}`, {}, 'error');
  await ctx.enterPhase(cancelled ? 'cancelled' : 'failed', { error: reason });
}

export class SlotWaitExpired extends Error {}

/** A slot under the parallel limits; beyond them the migration waits its turn, phase queued. */
export async function takeMigrationSlot(
  ctx: MigrationRun,
  slot: {
    clusterId: string;
    sourceHostId: string;
    destinationHostId: string;
    limits: SlotLimits;
    queueTimeoutMs: number;
    checks: CheckResult[];
    /** Called once the slots workflow answers that the migration must queue, before it waits. */
    onQueued?: () => void;
  },
): Promise<boolean> {
  const { saga, migrationId, timings } = ctx;
  const slotsWorkflowId = migrationSlotsWorkflowId(slot.clusterId);
  // Registered first: releasing a slot never granted is harmless, holding one never released is not.
  // Shielded from the workflow's cancellation: a rollback still holds the slot until it has released it.
  const leaseScope = new CancellationScope({
    cancellable: true,
    parent: new CancellationScope({ cancellable: false }),
  });
  let lease: Promise<void> | null = null;
  saga.add('release slot', async () => {
    leaseScope.cancel();
    await lease;
    // A signal from the workflow costs a round trip through the server before the run can go on; the
    // activity sends the same signal beside the steps that end the run. Runs begun before signal directly.
    if (patched(SLOT_RELEASED_BY_ACTIVITY)) {
      await ctx.steps.write.releaseMigrationSlot({ slotsWorkflowId, migrationId });
      return;
    }
    await getExternalWorkflowHandle(slotsWorkflowId)
      .signal(releaseSlotSignal, { migrationId })
      .catch(() => undefined);
  });
  const answer = await ctx.steps.decide.acquireMigrationSlot({
    clusterId: slot.clusterId,
    migrationId,
    workflowId: workflowInfo().workflowId,
    sourceHostId: slot.sourceHostId,
    destinationHostId: slot.destinationHostId,
    limits: slot.limits,
    leaseMs: timings.slotLeaseMs,
  });
  if (!answer.granted) {
    slot.onQueued?.();
    await ctx.enterPhase('queued', { destinationHostId: slot.destinationHostId, checks: slot.checks });
    await ctx.event('queued', `waiting for a migration slot, position ${answer.position}`, {
      position: answer.position,
      limits: slot.limits,
    });
    if (!(await condition(ctx.slotGranted, slot.queueTimeoutMs))) {
      // The grant may have crossed our timeout: then the slot is ours and the migration goes on.
      const left = await ctx.steps.decide.leaveMigrationSlotQueue({ slotsWorkflowId, migrationId });
      if (left.left || !left.holding) {
        throw new SlotWaitExpired(
          `waited ${Math.round(slot.queueTimeoutMs / 1000)} s for a migration slot (queue position ${left.left ? left.position : answer.position})`,
        );
      }
    }
    await ctx.event('slot_granted', 'migration slot granted');
  }
  lease = leaseScope
    .run(() =>
      keepSlotLeaseFor(timings).keepSlotLease({
        slotsWorkflowId,
        migrationId,
        leaseMs: timings.slotLeaseMs,
        renewIntervalMs: timings.slotRenewIntervalMs,
        sourceHostId: slot.sourceHostId,
        destinationHostId: slot.destinationHostId,
      }),
    )
    // A keeper that stops for any reason must not keep the release below from being sent.
    .catch(() => undefined);
  return !answer.granted;
}
