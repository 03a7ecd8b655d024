import { Context } from '@temporalio/activity';
import { WithStartWorkflowOperation, WorkflowIdConflictPolicy, type Client } from '@temporalio/client';
import type { migrationSlots } from '../workflows/migration-slots.ts';
import { migrationSlotsWorkflowId } from '../domain/workflow-ids.ts';
import {
  acquireSlotUpdate,
  type AcquireSlotAnswer,
  type AcquireSlotInput,
} from '../workflows/migration-slots-messages.ts';

/** Workflows cannot send updates, so the migration asks the cluster's slots workflow through this activity. */
export function slotActivities(deps: { temporal?: Client }) {
  return {
    async acquireMigrationSlot(input: AcquireSlotInput & { clusterId: string }): Promise<AcquireSlotAnswer> {
      if (!deps.temporal) throw new Error('acquireMigrationSlot needs a Temporal client');
      const { clusterId, ...request } = input;
      return deps.temporal.workflow.executeUpdateWithStart(acquireSlotUpdate, {
        args: [request],
        startWorkflowOperation: new WithStartWorkflowOperation<typeof migrationSlots>('migrationSlots', {
          workflowId: migrationSlotsWorkflowId(clusterId),
          taskQueue: Context.current().info.taskQueue,
          workflowIdConflictPolicy: WorkflowIdConflictPolicy.USE_EXISTING,
          args: [],
        }),
      });
    },
  };
}
