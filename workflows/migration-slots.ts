import {
  allHandlersFinished,
  condition,
  continueAsNew,
  getExternalWorkflowHandle,
  setHandler,
  sleep,
  workflowInfo,
} from '@temporalio/workflow';
import {
  DEFAULT_SLOT_LIMITS,
  grantInOrder,
  queuePosition,
  type SlotLimits,
  type SlotRequest,
} from '../domain/slots.ts';
import {
  acquireSlotUpdate,
  releaseSlotSignal,
  renewSlotSignal,
  slotGrantedSignal,
  slotsQuery,
  type AcquireSlotAnswer,
} from './migration-slots-messages.ts';

interface Holder extends SlotRequest {
  leaseMs: number;
  /** Bumped on every grant or renewal; a lease timer only expires the lease version it was started for. */
  leaseVersion: number;
}

export interface MigrationSlotsState {
  holders: Holder[];
  queue: (SlotRequest & { leaseMs: number })[];
  limits: SlotLimits;
}

/**
 * The per-cluster semaphore of live migrations: at most perCluster running, outboundPerNode per source and
 * inboundPerNode per destination; the rest wait in a fair queue and start in order as slots free. A holder
 * that stops renewing (its workflow was terminated, say) loses its slot when its lease ends.
 */
export async function migrationSlots(
  state: MigrationSlotsState = { holders: [], queue: [], limits: DEFAULT_SLOT_LIMITS },
): Promise<void> {
  const { holders, queue } = state;
  let limits = state.limits;
  let changed = true;

  const startLease = (holder: Holder) => {
    const version = ++holder.leaseVersion;
    void sleep(holder.leaseMs).then(() => {
      const current = holders.find((h) => h.migrationId === holder.migrationId);
      if (current && current.leaseVersion === version) {
        holders.splice(holders.indexOf(current), 1);
        changed = true;
      }
    });
  };

  const grant = (waiter: SlotRequest & { leaseMs: number }) => {
    queue.splice(queue.indexOf(waiter), 1);
    const holder: Holder = { ...waiter, leaseVersion: 0 };
    holders.push(holder);
    startLease(holder);
  };

  /** Grants whoever fits now; returns those to wake (everyone but the caller of an update). */
  const grantWaiters = (): SlotRequest[] => {
    const granted = grantInOrder(queue, holders, limits);
    for (const waiter of granted) grant(queue.find((w) => w.migrationId === waiter.migrationId)!);
    return granted;
  };

  const wake = async (granted: SlotRequest[]) => {
    for (const waiter of granted) {
      try {
        await getExternalWorkflowHandle(waiter.workflowId).signal(slotGrantedSignal);
      } catch {
        // Its workflow is gone: the slot goes back at once rather than after the lease.
        const gone = holders.findIndex((h) => h.migrationId === waiter.migrationId);
        if (gone !== -1) holders.splice(gone, 1);
        changed = true;
      }
    }
  };

  setHandler(slotsQuery, () => ({ holders, queue, limits }));

  setHandler(acquireSlotUpdate, (input): AcquireSlotAnswer => {
    limits = input.limits;
    const { limits: _limits, ...request } = input;
    const held = holders.find((h) => h.migrationId === request.migrationId);
    if (held) return { granted: true };
    if (!queue.some((w) => w.migrationId === request.migrationId)) queue.push(request);
    const granted = grantInOrder(queue, holders, limits);
    const mine = granted.some((g) => g.migrationId === request.migrationId);
    for (const waiter of granted) grant(queue.find((w) => w.migrationId === waiter.migrationId)!);
    const others = granted.filter((g) => g.migrationId !== request.migrationId);
    if (others.length > 0) void wake(others);
    if (mine) return { granted: true };
    return { granted: false, position: queuePosition(queue, request.migrationId) ?? queue.length };
  });

  setHandler(releaseSlotSignal, ({ migrationId }) => {
    const held = holders.findIndex((h) => h.migrationId === migrationId);
    if (held !== -1) holders.splice(held, 1);
    const waiting = queue.findIndex((w) => w.migrationId === migrationId);
    if (waiting !== -1) queue.splice(waiting, 1);
    changed = true;
  });

  setHandler(renewSlotSignal, ({ migrationId, leaseMs }) => {
    const holder = holders.find((h) => h.migrationId === migrationId);
    if (!holder) return;
    holder.leaseMs = leaseMs;
    startLease(holder);
  });

  // Leases restart in full after continue-as-new: their timers do not carry over.
  for (const holder of holders) startLease(holder);

  for (;;) {
    await condition(() => changed || workflowInfo().continueAsNewSuggested);
    if (changed) {
      changed = false;
      await wake(grantWaiters());
    }
    if (workflowInfo().continueAsNewSuggested) {
      await condition(allHandlersFinished);
      await continueAsNew<typeof migrationSlots>({ holders, queue, limits });
    }
  }
}
