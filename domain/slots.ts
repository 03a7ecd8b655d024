/** Concurrency limits on live migrations (KubeVirt's parallel* settings, plus inbound per node as oVirt has). */
export interface SlotLimits {
  perCluster: number;
  outboundPerNode: number;
  inboundPerNode: number;
}

export const DEFAULT_SLOT_LIMITS: SlotLimits = { perCluster: 5, outboundPerNode: 2, inboundPerNode: 2 };

export interface SlotRequest {
  migrationId: string;
  /** The migration workflow to signal when the slot is granted. */
  workflowId: string;
  sourceHostId: string;
  destinationHostId: string;
}

export type SlotBlocker = 'cluster' | 'outbound' | 'inbound';

/** Which limit a request would break if it started now, or null if it fits. */
export function blockerOf(
  request: SlotRequest,
  holders: readonly SlotRequest[],
  limits: SlotLimits,
): SlotBlocker | null {
  if (holders.length >= limits.perCluster) return 'cluster';
  const outbound = holders.filter((h) => h.sourceHostId === request.sourceHostId).length;
  if (outbound >= limits.outboundPerNode) return 'outbound';
  const inbound = holders.filter((h) => h.destinationHostId === request.destinationHostId).length;
  if (inbound >= limits.inboundPerNode) return 'inbound';
  return null;
}

/**
 * Who may start now, in queue order. A full cluster stops everyone. A waiter held back only by its own
 * hosts' limits keeps its place while later waiters between other hosts go ahead — none of them could
 * have used its slot — and it is served first as soon as its hosts free up.
 */
export function grantInOrder(
  queue: readonly SlotRequest[],
  holders: readonly SlotRequest[],
  limits: SlotLimits,
): SlotRequest[] {
  const running = [...holders];
  const granted: SlotRequest[] = [];
  for (const waiter of queue) {
    const blocker = blockerOf(waiter, running, limits);
    if (blocker === 'cluster') break;
    if (blocker !== null) continue;
    running.push(waiter);
    granted.push(waiter);
  }
  return granted;
}

export function queuePosition(queue: readonly SlotRequest[], migrationId: string): number | null {
  const index = queue.findIndex((w) => w.migrationId === migrationId);
  return index === -1 ? null : index + 1;
}

/** How many of each bounded record the slots workflow keeps (they ride along through continue-as-new). */
export const SLOT_RECORD_LIMITS = { expired: 50, released: 200, reinstated: 50 } as const;

/** A lease renewal as the slots workflow receives it; the request fields come with renewals from keepSlotLease. */
export interface SlotRenewal extends Partial<SlotRequest> {
  migrationId: string;
}

/** What the slots workflow knows when a renewal arrives. */
export interface SlotsSnapshot {
  holders: readonly SlotRequest[];
  queue: readonly SlotRequest[];
  /** Holders whose lease ran out, most recent last (bounded). */
  expired: readonly SlotRequest[];
  /** Migrations that released their slot, most recent last (bounded). */
  released: readonly string[];
}

export type RenewVerdict =
  /** It holds a slot: extend its lease. */
  | { action: 'extend' }
  /**
   * It lost its slot (its lease ran out, so the slot may have gone to someone else) yet it is still running,
   * since it renews: count it as a holder again, even above the limits. `exceeds` names the limits the
   * holders then break; nobody else is granted on a limit that is broken until it is back under.
   */
  | {
      action: 'reinstate';
      holder: SlotRequest;
      /** Where we learned who it is: the expired record, the renewal itself, or a queue entry it left behind. */
      from: 'expired' | 'renewal' | 'queue';
      exceeds: SlotBlocker[];
    }
  /**
   * released: a renewal that crossed its own release (it finished); counting it would leak a slot.
   * unknown: neither held, expired nor told who it is: nothing to count it against.
   */
  | { action: 'ignore'; reason: 'released' | 'unknown' };

/** The renewal's own description of the migration, if it carries all of it. */
function requestOf(renewal: SlotRenewal): SlotRequest | null {
  const { migrationId, workflowId, sourceHostId, destinationHostId } = renewal;
  if (workflowId === undefined || sourceHostId === undefined || destinationHostId === undefined) return null;
  return { migrationId, workflowId, sourceHostId, destinationHostId };
}

/** The limits `holders` break (strictly above) on the cluster and on `holder`'s own hosts. */
export function limitsExceeded(
  holder: SlotRequest,
  holders: readonly SlotRequest[],
  limits: SlotLimits,
): SlotBlocker[] {
  const exceeded: SlotBlocker[] = [];
  if (holders.length > limits.perCluster) exceeded.push('cluster');
  const outbound = holders.filter((h) => h.sourceHostId === holder.sourceHostId).length;
  if (outbound > limits.outboundPerNode) exceeded.push('outbound');
  const inbound = holders.filter((h) => h.destinationHostId === holder.destinationHostId).length;
  if (inbound > limits.inboundPerNode) exceeded.push('inbound');
  return exceeded;
}

/**
 * The rule for a lease renewal. A renewal means its migration is running now, whatever the slots workflow
 * thought: a holder's lease is extended; one whose lease ran out (and whose slot may have been handed on) is
 * counted again rather than ignored, or the cluster would run more migrations than its limits while
 * believing it did not. Only a renewal from a migration that has released its slot is stale.
 */
export function renewVerdict(renewal: SlotRenewal, slots: SlotsSnapshot, limits: SlotLimits): RenewVerdict {
  const { migrationId } = renewal;
  if (slots.holders.some((h) => h.migrationId === migrationId)) return { action: 'extend' };
  if (slots.released.includes(migrationId)) return { action: 'ignore', reason: 'released' };
  const reinstate = (holder: SlotRequest, from: 'expired' | 'renewal' | 'queue'): RenewVerdict => ({
    action: 'reinstate',
    holder,
    from,
    exceeds: limitsExceeded(holder, [...slots.holders, holder], limits),
  });
  const fromRenewal = requestOf(renewal);
  // The renewal's own description wins: it is what runs now.
  const expired = slots.expired.findLast((h) => h.migrationId === migrationId);
  if (expired) return reinstate(fromRenewal ?? pick(expired), 'expired');
  if (fromRenewal) return reinstate(fromRenewal, 'renewal');
  const queued = slots.queue.find((w) => w.migrationId === migrationId);
  if (queued) return reinstate(pick(queued), 'queue');
  return { action: 'ignore', reason: 'unknown' };
}

function pick({ migrationId, workflowId, sourceHostId, destinationHostId }: SlotRequest): SlotRequest {
  return { migrationId, workflowId, sourceHostId, destinationHostId };
}

/** Appends to a bounded record, dropping the oldest entries beyond `max`. */
export function remember<T>(list: T[], item: T, max: number): void {
  list.push(item);
  if (list.length > max) list.splice(0, list.length - max);
}
