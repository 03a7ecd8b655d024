import { allHandlersFinished, condition, setHandler, workflowInfo } from '@temporalio/workflow';
import {
  emptyLock,
  liveHolder,
  release,
  renew,
  tryAcquire,
  type LockState,
} from '../domain/migration-lock.ts';
import { continueOnCoordinationQueue } from './coordination-queue.ts';
import {
  lockHolderQuery,
  releaseLockUpdate,
  renewLockUpdate,
  tryAcquireLockUpdate,
} from './migration-lock-messages.ts';

/** Requests handled before the run continues as new, well before its history grows large. */
const UPDATES_PER_RUN = 500;

/**
 * The `migration-lock` singleton (started by update-with-start): one holder at a time, on a lease checked
 * against workflow time whenever someone asks, so no timer is needed and a dead holder's lease simply runs out.
 */
export async function migrationLock(initial: LockState = emptyLock()): Promise<void> {
  let state = initial;
  let handled = 0;
  // The sandbox's Date is workflow time: deterministic on replay.
  // eslint-disable-next-line no-restricted-globals
  const now = () => Date.now();

  setHandler(tryAcquireLockUpdate, (request) => {
    handled += 1;
    const result = tryAcquire(state, request, now());
    state = result.state;
    return result.answer;
  });
  setHandler(renewLockUpdate, (request) => {
    handled += 1;
    const result = renew(state, request, now());
    state = result.state;
    return result.answer;
  });
  setHandler(releaseLockUpdate, ({ owner }) => {
    handled += 1;
    const result = release(state, owner);
    state = result.state;
    return { released: result.released };
  });
  setHandler(lockHolderQuery, () => liveHolder(state, now()));

  await condition(() => handled >= UPDATES_PER_RUN || workflowInfo().continueAsNewSuggested);
  await condition(allHandlersFinished);
  await continueOnCoordinationQueue<typeof migrationLock>(state);
}
