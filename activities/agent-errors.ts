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

/**
 * For `.catch`: an agent that does not know the guest (404) answers `fallback`, as when the guest was
 * already cleaned up or its host lost it; any other error goes on.
 */
export function whenUnknownHere<T>(fallback: T) {
  return (err: unknown): T => {
    if (err instanceof AgentCallError && err.status === 404) return fallback;
    throw err;
  };
}
