import { Context, log } from '@temporalio/activity';
import {
  WithStartWorkflowOperation,
  WorkflowIdConflictPolicy,
  WorkflowNotFoundError,
  type Client,
} from '@temporalio/client';
import type { migrationSlots } from '../workflows/migration-slots.ts';
import { migrationSlotsWorkflowId } from '../domain/workflow-ids.ts';
import { askWhileBusy } from './ask-while-busy.ts';
import { renewUntilCancelled } from './lease-keeper.ts';
import {
  acquireSlotUpdate,
  leaveSlotQueueUpdate,
  releaseSlotSignal,
  renewSlotSignal,
  type AcquireSlotAnswer,
  type AcquireSlotInput,
  type LeaveSlotQueueAnswer,
  type RenewSlotInput,
} from '../workflows/migration-slots-messages.ts';
import { coordinationTaskQueue } from '../domain/task-queues.ts';

export interface KeepSlotLeaseInput {
  /** The cluster's slots workflow (migrationSlotsWorkflowId(clusterId)). */
  slotsWorkflowId: string;
  migrationId: string;
  /** Each renewal extends the lease to this long from its arrival. */
  leaseMs: number;
  /** Renew this often; well under leaseMs. Heartbeats go at least every third of the heartbeat timeout. */
  renewIntervalMs: number;
  /**
   * Who holds the slot, sent with every renewal so that, if the lease ran out while this migration still ran
   * (and the slot went to someone else), the slots workflow can count it as a holder again even when it no
   * longer remembers the expired lease. Pass both hosts; workflowId defaults to the calling workflow's.
   * Without the hosts a renewal after expiry is still counted, as long as the slots workflow remembers the
   * expired holder (its last SLOT_RECORD_LIMITS.expired expirations).
   */
  workflowId?: string;
  sourceHostId?: string;
  destinationHostId?: string;
}

/** What a keepSlotLease attempt carries in its heartbeats (and a retried attempt picks up). */
interface KeepSlotLeaseProgress {
  renewals: number;
  lastRenewedAt: string | null;
  failedRenewals: number;
  lastError: string | null;
}

/** Workflows cannot send updates, so the migration asks the cluster's slots workflow through this activity. */
export function slotActivities(deps: { temporal?: Client }) {
  const client = (what: string) => {
    if (!deps.temporal) throw new Error(`${what} needs a Temporal client`);
    return deps.temporal;
  };
  return {
    async acquireMigrationSlot(input: AcquireSlotInput & { clusterId: string }): Promise<AcquireSlotAnswer> {
      const temporal = client('acquireMigrationSlot');
      const { clusterId, ...request } = input;
      const taskQueue = coordinationTaskQueue(Context.current().info.taskQueue);
      // A burst of migrations (an alert cycle's fifty, an evacuation) meets the slots workflow's in-flight limit.
      return askWhileBusy(() =>
        temporal.workflow.executeUpdateWithStart(acquireSlotUpdate, {
          args: [request],
          // A fresh operation per attempt: one is bound to the call it was sent with.
          startWorkflowOperation: new WithStartWorkflowOperation<typeof migrationSlots>('migrationSlots', {
            workflowId: migrationSlotsWorkflowId(clusterId),
            taskQueue,
            workflowIdConflictPolicy: WorkflowIdConflictPolicy.USE_EXISTING,
            args: [],
          }),
        }),
      );
    },

    /**
     * Gives the slot back (the slots workflow's releaseSlot signal, which ignores a migration it does not hold).
     * A slots workflow that is gone holds nothing; anything else is retried.
     */
    async releaseMigrationSlot(input: { slotsWorkflowId: string; migrationId: string }): Promise<void> {
      const temporal = client('releaseMigrationSlot');
      try {
        await temporal.workflow
          .getHandle(input.slotsWorkflowId)
          .signal(releaseSlotSignal, { migrationId: input.migrationId });
      } catch (err) {
        if (!(err instanceof WorkflowNotFoundError)) throw err;
      }
    },

    /**
     * A waiter whose queue timeout ran out leaves the queue: its position when it left, or, if it was
     * granted a slot meanwhile, { left: false, holding: true } (the slot is kept: use it or release it).
     */
    async leaveMigrationSlotQueue(input: {
      slotsWorkflowId: string;
      migrationId: string;
    }): Promise<LeaveSlotQueueAnswer> {
      const temporal = client('leaveMigrationSlotQueue');
      return askWhileBusy(() =>
        temporal.workflow
          .getHandle(input.slotsWorkflowId)
          .executeUpdate(leaveSlotQueueUpdate, { args: [{ migrationId: input.migrationId }] }),
      );
    },

    /**
     * Keeps a granted slot's lease alive for as long as the migration holds it: started right after the
     * grant, cancelled at the release. Renews by signal to the slots workflow (nothing lands in the
     * migration's history) every renewIntervalMs and heartbeats in between, so a dead worker is noticed by
     * the heartbeat timeout and the retried attempt renews at once and goes on. Returns (void) when the
     * workflow cancels it; never returns otherwise. A failed renewal is retried next round rather than
     * failing the activity.
     */
    async keepSlotLease(input: KeepSlotLeaseInput): Promise<void> {
      const temporal = client('keepSlotLease');
      const ctx = Context.current();
      const previous = ctx.info.heartbeatDetails as KeepSlotLeaseProgress | undefined;
      const progress: KeepSlotLeaseProgress = {
        renewals: previous?.renewals ?? 0,
        lastRenewedAt: previous?.lastRenewedAt ?? null,
        failedRenewals: previous?.failedRenewals ?? 0,
        lastError: null,
      };
      const workflowId = input.workflowId ?? ctx.info.workflowExecution?.workflowId;
      const renewal: RenewSlotInput = {
        migrationId: input.migrationId,
        leaseMs: input.leaseMs,
        ...(workflowId !== undefined ? { workflowId } : {}),
        ...(input.sourceHostId !== undefined ? { sourceHostId: input.sourceHostId } : {}),
        ...(input.destinationHostId !== undefined ? { destinationHostId: input.destinationHostId } : {}),
      };
      await renewUntilCancelled({
        renewIntervalMs: input.renewIntervalMs,
        details: () => progress,
        async renew() {
          try {
            // Signal-with-start: should the slots workflow have been reset, a fresh one learns of this holder.
            await temporal.workflow.signalWithStart<typeof migrationSlots, [RenewSlotInput]>(
              'migrationSlots',
              {
                workflowId: input.slotsWorkflowId,
                taskQueue: coordinationTaskQueue(ctx.info.taskQueue),
                args: [],
                signal: renewSlotSignal,
                signalArgs: [renewal],
              },
            );
            progress.renewals += 1;
            progress.lastRenewedAt = new Date().toISOString();
            progress.lastError = null;
          } catch (err) {
            // A failed renewal is retried next round rather than failing the activity.
            progress.failedRenewals += 1;
            progress.lastError = err instanceof Error ? err.message : String(err);
            log.warn('slot lease renewal failed; retrying next round', {
              migrationId: input.migrationId,
              error: progress.lastError,
            });
          }
        },
      });
    },
  };
}
