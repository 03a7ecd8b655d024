import { ApplicationFailure, Context, log } from '@temporalio/activity';
import {
  WithStartWorkflowOperation,
  WorkflowIdConflictPolicy,
  WorkflowNotFoundError,
  type Client,
} from '@temporalio/client';
import type { LockRequest, TryAcquireAnswer } from '../domain/migration-lock.ts';
import { askWhileBusy } from './ask-while-busy.ts';
import { renewUntilCancelled } from './lease-keeper.ts';
import { MIGRATION_LOCK_WORKFLOW_ID } from '../domain/workflow-ids.ts';
import type { migrationLock } from '../workflows/migration-lock.ts';
import {
  releaseLockUpdate,
  renewLockUpdate,
  tryAcquireLockUpdate,
} from '../workflows/migration-lock-messages.ts';
import { coordinationTaskQueue } from '../domain/task-queues.ts';

class LockReleased extends Error {}

export interface KeepLockLeaseInput {
  owner: string;
  leaseMs: number;
  renewIntervalMs: number;
}

export interface MigrationLockDeps {
  temporal?: Client;
  /** Default `migration-lock`; tests sharing one Temporal namespace give each stack its own. */
  migrationLockWorkflowId?: string;
}

/** Workflows cannot send updates: the alert cycle takes, keeps and frees the `migration-lock` through these. */
export function migrationLockActivities(deps: MigrationLockDeps) {
  const lockId = deps.migrationLockWorkflowId ?? MIGRATION_LOCK_WORKFLOW_ID;
  const client = (what: string) => {
    if (!deps.temporal) throw new Error(`${what} needs a Temporal client`);
    return deps.temporal;
  };
  const lock = (what: string) => client(what).workflow.getHandle(lockId);

  return {
    /** Update-with-start: the singleton comes into being with the first request. */
    async tryAcquireMigrationLock(request: LockRequest): Promise<TryAcquireAnswer> {
      const temporal = client('tryAcquireMigrationLock');
      const taskQueue = coordinationTaskQueue(Context.current().info.taskQueue);
      // Many rules' cycles can ask at once, past the lock workflow's in-flight update limit.
      return askWhileBusy(() =>
        temporal.workflow.executeUpdateWithStart(tryAcquireLockUpdate, {
          args: [request],
          startWorkflowOperation: new WithStartWorkflowOperation<typeof migrationLock>('migrationLock', {
            workflowId: lockId,
            taskQueue,
            workflowIdConflictPolicy: WorkflowIdConflictPolicy.USE_EXISTING,
            args: [],
          }),
        }),
      );
    },

    /** Frees the lock if the owner still holds it; a lock that is gone or held by another frees nothing. */
    async releaseMigrationLock(input: { owner: string }): Promise<{ released: boolean }> {
      try {
        const handle = lock('releaseMigrationLock');
        return await askWhileBusy(() => handle.executeUpdate(releaseLockUpdate, { args: [input] }));
      } catch (err) {
        if (err instanceof WorkflowNotFoundError) return { released: false };
        throw err;
      }
    },

    /**
     * Renews the lease every renewIntervalMs and heartbeats in between, until the workflow cancels it (then it
     * returns). When a renewal answers that the lock is no longer held (the lease ran out while this worker was
     * away and another batch took it), it fails for good with MigrationLockLost: the batch must stop starting
     * migrations. A renewal that cannot reach Temporal is retried next round.
     */
    async keepMigrationLockLease(input: KeepLockLeaseInput): Promise<void> {
      const handle = lock('keepMigrationLockLease');
      try {
        await renewUntilCancelled({
          renewIntervalMs: input.renewIntervalMs,
          async renew() {
            const answer = await handle
              .executeUpdate(renewLockUpdate, { args: [{ owner: input.owner, leaseMs: input.leaseMs }] })
              .catch((err: unknown) => {
                if (err instanceof WorkflowNotFoundError) return { held: false as const, released: false };
                log.warn('migration lock renewal failed; retrying next round', { error: String(err) });
                return null;
              });
            // The batch released the lock while this renewal was on its way: nothing is lost, the keeping ends.
            if (answer && !answer.held && answer.released) throw new LockReleased();
            if (answer && !answer.held) {
              throw ApplicationFailure.nonRetryable(
                `the migration lock is no longer held by ${input.owner}: its lease ran out`,
                'MigrationLockLost',
              );
            }
          },
        });
      } catch (err) {
        if (!(err instanceof LockReleased)) throw err;
      }
    },
  };
}
