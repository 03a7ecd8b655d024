import { proxyActivities, workflowInfo } from '@temporalio/workflow';
import type { Activities } from '../activities/index.ts';
import type { ReturnReconciliation } from '../activities/host-down-activities.ts';

const { reconcileReturnedHost, recordEvent } = proxyActivities<Activities>({
  startToCloseTimeout: '2 minutes',
  retry: { initialInterval: '1 second', maximumInterval: '10 seconds' },
});

/**
 * A host holds a lease again (its agent started, or reconnected after it fenced itself): what it still has of
 * guests that run elsewhere now goes, and its own fenced guests run again.
 */
export async function hostReturn(input: { hostId: string; leaseId: string }): Promise<ReturnReconciliation> {
  const result = await reconcileReturnedHost(input.hostId);
  const { removed, restarted, left } = result;
  if (removed.length + restarted.length + left.length > 0) {
    const doubled = removed.filter((r) => r.wasLive);
    await recordEvent({
      subjectKind: 'host',
      subjectId: input.hostId,
      type: 'host_returned',
      level: doubled.length > 0 ? 'error' : 'info',
      message: [
        removed.length > 0 ? `removed ${removed.map((r) => r.name).join(', ')} (now elsewhere)` : '',
        doubled.length > 0 ? `of which still live here: ${doubled.map((r) => r.name).join(', ')}` : '',
        restarted.length > 0 ? `restarted ${restarted.map((r) => r.name).join(', ')} (fenced)` : '',
        left.length > 0 ? `left ${left.map((r) => `${r.name} (${r.reason})`).join(', ')}` : '',
      ]
        .filter(Boolean)
        .join('; '),
      data: { leaseId: input.leaseId, ...result },
      dedupeKey: workflowInfo().workflowId,
    });
  }
  return result;
}
