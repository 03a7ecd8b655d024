import {
  continueAsNew,
  makeContinueAsNewFunc,
  patched,
  workflowInfo,
  type Workflow,
} from '@temporalio/workflow';
import { coordinationTaskQueue } from '../domain/task-queues.ts';

export const SINGLETONS_ON_COORDINATION_QUEUE = 'singletons-on-coordination-queue';

/**
 * Continues a singleton as new on the coordination task queue (domain/task-queues.ts). New singletons start
 * there; one begun on the migrations' queue before that queue existed moves at its next continue-as-new.
 */
export function continueOnCoordinationQueue<F extends Workflow>(...args: Parameters<F>): Promise<never> {
  if (!patched(SINGLETONS_ON_COORDINATION_QUEUE)) return continueAsNew<F>(...args);
  return makeContinueAsNewFunc<F>({ taskQueue: coordinationTaskQueue(workflowInfo().taskQueue) })(...args);
}
