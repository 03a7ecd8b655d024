import { ApplicationFailure } from '@temporalio/common';
import { AgentCallError } from './agent-client.ts';

/** Runs an agent call; a 4xx answer becomes a non-retryable failure so Temporal does not repeat a refused call. */
export async function agentCall<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof AgentCallError && !err.retryable) {
      throw ApplicationFailure.nonRetryable(err.message, `Agent${err.status}`, { code: err.code });
    }
    throw err;
  }
}
