import {
  allHandlersFinished,
  condition,
  getExternalWorkflowHandle,
  log,
  setHandler,
  sleep,
  workflowInfo,
} from '@temporalio/workflow';
import {
  DEFAULT_SLOT_LIMITS,
  grantInOrder,
  queuePosition,
  remember,
  renewVerdict,
  SLOT_RECORD_LIMITS,
  type SlotLimits,
  type SlotRequest,
} from '../domain/slots.ts';
import { continueOnCoordinationQueue } from './coordination-queue.ts';
import {
  acquireSlotUpdate,
  leaveSlotQueueUpdate,
  releaseSlotSignal,
  renewSlotSignal,
  slotGrantedSignal,
  slotsQuery,
  type AcquireSlotAnswer,
  type LeaveSlotQueueAnswer,
  type ReinstatedHolder,
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
  /** Holders whose lease ran out, most recent last (bounded). Absent in state from older runs. */
  expired?: SlotRequest[];
  /** Migrations that released their slot, most recent last (bounded): a renewal after its release is stale. */
  released?: string[];
  /** Renewals from migrations that had lost their slot and were counted again (bounded). */
  reinstated?: ReinstatedHolder[];
}

/**
 * The per-cluster semaphore of live migrations: at most perCluster running, outboundPerNode per source and
 * inboundPerNode per destination; the rest wait in a fair queue and start in order as slots free. A holder
 * that stops renewing (its workflow was terminated, say) loses its slot when its lease ends; if it renews
 * later it is still running, so it is counted again, even above the limits, and nobody else starts on a
 * limit it breaks until the count is back under.
 */
export async function migrationSlots(
  state: MigrationSlotsState = { holders: [], queue: [], limits: DEFAULT_SLOT_LIMITS },
): Promise<void> {
  const { holders, queue } = state;
  const expired = state.expired ?? [];
  const released = state.released ?? [];
  const reinstated = state.reinstated ?? [];
  let limits = state.limits;
  let changed = true;

  const strip = ({ migrationId, workflowId, sourceHostId, destinationHostId }: SlotRequest): SlotRequest => ({
    migrationId,
    workflowId,
    sourceHostId,
    destinationHostId,
  });

  const startLease = (holder: Holder) => {
    const version = ++holder.leaseVersion;
    void sleep(holder.leaseMs).then(() => {
      const current = holders.find((h) => h.migrationId === holder.migrationId);
      if (current && current.leaseVersion === version) {
        holders.splice(holders.indexOf(current), 1);
        remember(expired, strip(current), SLOT_RECORD_LIMITS.expired);
        log.warn('migration slot lease expired', {
          migrationId: current.migrationId,
          leaseMs: current.leaseMs,
        });
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

  setHandler(slotsQuery, () => ({ holders, queue, limits, expired, released, reinstated }));

  setHandler(acquireSlotUpdate, (input): AcquireSlotAnswer => {
    limits = input.limits;
    const { limits: _limits, ...request } = input;
    const releasedBefore = released.indexOf(request.migrationId);
    if (releasedBefore !== -1) released.splice(releasedBefore, 1);
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

  setHandler(leaveSlotQueueUpdate, ({ migrationId }): LeaveSlotQueueAnswer => {
    const position = queuePosition(queue, migrationId);
    if (position !== null) {
      queue.splice(position - 1, 1);
      // Whoever stood behind it may fit now.
      changed = true;
      return { left: true, position };
    }
    return { left: false, holding: holders.some((h) => h.migrationId === migrationId) };
  });

  setHandler(releaseSlotSignal, ({ migrationId }) => {
    const held = holders.findIndex((h) => h.migrationId === migrationId);
    if (held !== -1) holders.splice(held, 1);
    const waiting = queue.findIndex((w) => w.migrationId === migrationId);
    if (waiting !== -1) queue.splice(waiting, 1);
    if (!released.includes(migrationId)) remember(released, migrationId, SLOT_RECORD_LIMITS.released);
    changed = true;
  });

  setHandler(renewSlotSignal, (renewal) => {
    const { leaseMs } = renewal;
    const verdict = renewVerdict(renewal, { holders, queue, expired, released }, limits);
    if (verdict.action === 'extend') {
      const holder = holders.find((h) => h.migrationId === renewal.migrationId)!;
      holder.leaseMs = leaseMs;
      startLease(holder);
      return;
    }
    if (verdict.action === 'ignore') {
      if (verdict.reason === 'unknown') {
        log.warn('lease renewal from a migration that holds no slot and is unknown; ignored', {
          migrationId: renewal.migrationId,
        });
      }
      return;
    }
    const waiting = queue.findIndex((w) => w.migrationId === renewal.migrationId);
    if (waiting !== -1) queue.splice(waiting, 1);
    const holder: Holder = { ...verdict.holder, leaseMs, leaseVersion: 0 };
    holders.push(holder);
    startLease(holder);
    const record: ReinstatedHolder = {
      migrationId: renewal.migrationId,
      // The workflow sandbox's Date is workflow time (the current task's start), deterministic on replay.
      // eslint-disable-next-line no-restricted-globals
      at: new Date().toISOString(),
      from: verdict.from,
      exceeds: verdict.exceeds,
    };
    remember(reinstated, record, SLOT_RECORD_LIMITS.reinstated);
    log.warn('migration renewed a slot lease that had run out: counted as a holder again', { ...record });
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
      await continueOnCoordinationQueue<typeof migrationSlots>({
        holders,
        queue,
        limits,
        expired,
        released,
        reinstated,
      });
    }
  }
}
