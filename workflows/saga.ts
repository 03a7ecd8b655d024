import { CancellationScope } from '@temporalio/workflow';
import { failureReason } from './failure-reason.ts';

export interface Compensation {
  name: string;
  undo: () => Promise<unknown>;
}

/**
 * Each step of a migration registers how to undo itself as soon as it may have done something (before its
 * call, when the call can leave work behind even if it fails). compensate() runs the undo steps newest first,
 * out of reach of cancellation, trying every one even when an earlier one failed: a half-done rollback is
 * worse than a noisy one. Compensations read the agents' real state themselves, so they are safe to run
 * whatever the step got as far as.
 */
export class Saga {
  private readonly compensations: Compensation[] = [];

  add(name: string, undo: () => Promise<unknown>): void {
    this.compensations.push({ name, undo });
  }

  /** Drops a compensation once its step is undone or committed by other means. */
  forget(name: string): void {
    const index = this.compensations.findIndex((c) => c.name === name);
    if (index >= 0) this.compensations.splice(index, 1);
  }

  has(name: string): boolean {
    return this.compensations.some((c) => c.name === name);
  }

  /** Runs and clears the compensations; returns what could not be undone, as `name: reason`. */
  async compensate(): Promise<string[]> {
    const leftovers: string[] = [];
    await CancellationScope.nonCancellable(async () => {
      while (this.compensations.length > 0) {
        const { name, undo } = this.compensations.pop()!;
        try {
          await undo();
        } catch (err) {
          leftovers.push(`${name}: ${failureReason(err)}`);
        }
      }
    });
    return leftovers;
  }
}
