import { proxyActivities, workflowInfo } from '@temporalio/workflow';
import type { Activities } from '../activities/index.ts';

const { recordEvent } = proxyActivities<Activities>({
  startToCloseTimeout: '30 seconds',
  retry: { initialInterval: '1 second', maximumInterval: '10 seconds' },
});

/**
 * A host-level run's events on its host, each keyed by the run and its place in it, so a retried activity
 * records it once.
 */
export function hostEventLog(hostId: string) {
  const key = workflowInfo().workflowId;
  let n = 0;
  const record = (e: Omit<Parameters<Activities['recordEvent']>[0], 'dedupeKey'>) =>
    recordEvent({ ...e, dedupeKey: `${key}:${n++}` });
  return {
    record,
    event: (type: string, message: string, data: Record<string, unknown> = {}, level?: 'warning') =>
      record({ subjectKind: 'host', subjectId: hostId, type, message, data, level }),
  };
}
