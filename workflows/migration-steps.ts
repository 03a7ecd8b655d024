import {
  ApplicationFailure,
  CancellationScope,
  condition,
  getExternalWorkflowHandle,
  isCancellation,
  workflowInfo,
} from '@temporalio/workflow';
import type { LiveMigrationTimings } from '../domain/live-migration.ts';
import type { CheckResult } from '../domain/prechecks.ts';
import type { SlotLimits } from '../domain/slots.ts';
import { migrationSlotsWorkflowId } from '../domain/workflow-ids.ts';
import { failureReason } from './failure-reason.ts';
import { keepSlotLeaseFor, quick } from './live-migrate-activities.ts';
import type { LiveMigrationPhase, PrecheckAnswer } from './live-migrate-messages.ts';
import { releaseSlotSignal } from './migration-slots-messages.ts';
import type { Saga } from './saga.ts';

/** The steps every kind of migration (live, cold, rescue) takes the same way, with their compensations. */
export interface MigrationStepContext {
  saga: Saga;
  migrationId: string;
  timings: LiveMigrationTimings;
  enterPhase: (
    phase: LiveMigrationPhase,
    extra?: { destinationHostId?: string; error?: string; checks?: CheckResult[] },
  ) => Promise<void>;
  event: (
    type: string,
    message: string,
    data?: Record<string, unknown>,
    level?: 'info' | 'warning' | 'error',
  ) => Promise<unknown>;
}

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
export async function endAtPrechecks(
  ctx: MigrationStepContext,
  err: unknown,
  answer: (verdict: PrecheckAnswer) => void,
  view: { error: string | null },
): Promise<never> {
  const reason = err instanceof PrecheckError ? err.message : failureReason(err);
  const failures = err instanceof PrecheckError ? err.failures : [];
  view.error = reason;
  await ctx.saga.compensate();
  await CancellationScope.nonCancellable(async () => {
    await ctx.event('precheck_failed', reason, failures.length > 0 ? { failures } : undefined, 'error');
    await ctx.enterPhase(isCancellation(err) ? 'cancelled' : 'failed', {
      error: reason,
      ...(err instanceof PrecheckError ? { checks: err.checks } : {}),
    });
  });
  answer({ ok: false, reason, failures });
  if (isCancellation(err)) throw err;
  throw ApplicationFailure.nonRetryable(reason, 'PrecheckFailed');
}

export class SlotWaitExpired extends Error {}

/**
 * A slot under the parallel limits; beyond them the migration waits its turn, phase queued. `granted` reads
 * the workflow's slotGranted signal flag.
 */
export async function takeMigrationSlot(
  ctx: MigrationStepContext,
  slot: {
    clusterId: string;
    sourceHostId: string;
    destinationHostId: string;
    limits: SlotLimits;
    queueTimeoutMs: number;
    checks: CheckResult[];
    granted: () => boolean;
  },
): Promise<void> {
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
    await getExternalWorkflowHandle(slotsWorkflowId)
      .signal(releaseSlotSignal, { migrationId })
      .catch(() => undefined);
  });
  const answer = await quick.acquireMigrationSlot({
    clusterId: slot.clusterId,
    migrationId,
    workflowId: workflowInfo().workflowId,
    sourceHostId: slot.sourceHostId,
    destinationHostId: slot.destinationHostId,
    limits: slot.limits,
    leaseMs: timings.slotLeaseMs,
  });
  if (!answer.granted) {
    await ctx.enterPhase('queued', { destinationHostId: slot.destinationHostId, checks: slot.checks });
    await ctx.event('queued', `waiting for a migration slot, position ${answer.position}`, {
      position: answer.position,
      limits: slot.limits,
    });
    if (!(await condition(slot.granted, slot.queueTimeoutMs))) {
      // The grant may have crossed our timeout: then the slot is ours and the migration goes on.
      const left = await quick.leaveMigrationSlotQueue({ slotsWorkflowId, migrationId });
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
}
