import { setTimeout as sleep } from 'node:timers/promises';
import { type Client, WorkflowExecutionAlreadyStartedError, WorkflowNotFoundError } from '@temporalio/client';
import { ApiError } from './errors.ts';

/** Whether Temporal has a running execution under this workflow id (whichever run it is). */
export async function workflowIsRunning(temporal: Client, workflowId: string): Promise<boolean> {
  try {
    const run = await temporal.workflow.getHandle(workflowId).describe();
    return run.status.name === 'RUNNING';
  } catch (err) {
    if (err instanceof WorkflowNotFoundError) return false;
    throw new ApiError(
      503,
      'unavailable',
      `could not ask Temporal about workflow ${workflowId}: ${(err as Error).message}`,
    );
  }
}

/**
 * How long a start waits for the previous run under the same workflow id to close. A migration's record reaches
 * its final phase a moment before its run closes (the phase write is its last activity), so a request arriving in
 * between would otherwise be refused although the guest has no active migration.
 */
export const PREVIOUS_RUN_CLOSE_WAIT_MS = 5_000;

/** Retries `start` with a short backoff while Temporal says a run with the same workflow id is still open. */
export async function startOnceThePreviousRunCloses<T>(
  start: () => Promise<T>,
  waitMs = PREVIOUS_RUN_CLOSE_WAIT_MS,
): Promise<T> {
  const deadline = Date.now() + waitMs;
  for (let delayMs = 100; ; delayMs = Math.min(delayMs * 2, 1_000)) {
    try {
      return await start();
    } catch (err) {
      if (!(err instanceof WorkflowExecutionAlreadyStartedError) || Date.now() + delayMs > deadline)
        throw err;
      await sleep(delayMs);
    }
  }
}

/** Waits (briefly) until no run is open under the workflow id; false if one still is at the end. */
export async function awaitNoRunningWorkflow(
  temporal: Client,
  workflowId: string,
  waitMs = PREVIOUS_RUN_CLOSE_WAIT_MS,
): Promise<boolean> {
  const deadline = Date.now() + waitMs;
  for (let delayMs = 100; ; delayMs = Math.min(delayMs * 2, 1_000)) {
    if (!(await workflowIsRunning(temporal, workflowId))) return true;
    if (Date.now() + delayMs > deadline) return false;
    await sleep(delayMs);
  }
}
