import { proxyActivities } from '@temporalio/workflow';
import type { Activities } from '../activities/index.ts';
import type { PruneHistoryInput, PruneHistoryResult } from '../domain/retention.ts';

const { pruneHistory } = proxyActivities<Activities>({
  // Past the activity's own budget (DEFAULT_PRUNE_BUDGET_MS) by more than one batch.
  startToCloseTimeout: '30 minutes',
  // A batch is one statement, bounded by the pool's statement timeout.
  heartbeatTimeout: '2 minutes',
  retry: { initialInterval: '10 seconds', maximumInterval: '5 minutes', maximumAttempts: 5 },
});

/** The daily run of the `prune-history` schedule: history past retention goes (domain/retention.ts). */
export async function pruneHistoryCycle(input: PruneHistoryInput): Promise<PruneHistoryResult> {
  return pruneHistory(input);
}
