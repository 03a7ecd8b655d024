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
