import {
  ApplicationFailure,
  executeChild,
  isCancellation,
  ParentClosePolicy,
  proxyActivities,
} from '@temporalio/workflow';
import type { Activities } from '../activities/index.ts';
import { liveMigrationWorkflowId } from '../domain/workflow-ids.ts';
import { migrationSummary } from '../domain/workflow-summaries.ts';
import { failureReason } from './failure-reason.ts';
import { liveMigrate, type LiveMigrateInput } from './live-migrate.ts';
import {
  GuestIdKey,
  GuestNameKey,
  MigrationKindKey,
  MigrationTriggerKey,
  SourceHostKey,
} from './search-attributes.ts';

export interface GroupMember {
  input: LiveMigrateInput;
  guestName: string;
  sourceHost: string;
  trigger: 'manual' | 'affinity';
  /** The child's run id, as the API recorded it on the row; absent in groups from before ids carried names. */
  workflowId?: string;
  /** The destination asked for, for the UI's summary line. */
  preferHost?: string;
}

export interface LiveMigrateGroupInput {
  groupId: string;
  members: GroupMember[];
}

export interface GroupOutcome {
  guestId: string;
  guestName: string;
  migrationId: string;
  outcome: 'completed' | 'failed' | 'cancelled';
  destination: string | null;
  error: string | null;
}

const { setMigrationPhase } = proxyActivities<Activities>({
  startToCloseTimeout: '30 seconds',
  retry: { maximumAttempts: 10 },
});

/**
 * with_same_labels: the guest and every guest carrying its affinity labels, each as a child liveMigrate run
 * (so each keeps its own id, history and rollback), all under the cluster's parallel limits.
 */
export async function liveMigrateGroup({ members }: LiveMigrateGroupInput): Promise<GroupOutcome[]> {
  const outcomes = await Promise.all(members.map(migrateMember));
  const failedCount = outcomes.filter((o) => o.outcome !== 'completed').length;
  if (failedCount === outcomes.length) {
    throw ApplicationFailure.nonRetryable(
      `none of the ${outcomes.length} guests moved`,
      'GroupFailed',
      outcomes,
    );
  }
  return outcomes;
}

async function migrateMember(member: GroupMember): Promise<GroupOutcome> {
  const { input } = member;
  const base = { guestId: input.guestId, guestName: member.guestName, migrationId: input.migrationId };
  try {
    const result = await executeChild(liveMigrate, {
      workflowId: member.workflowId ?? liveMigrationWorkflowId(input.guestId),
      staticSummary: migrationSummary({
        guest: member.guestName,
        source: member.sourceHost,
        destination: member.preferHost,
        kind: 'live',
        trigger: member.trigger,
      }),
      args: [input],
      // Each child is a durable migration of its own that must reach a terminal phase (rolled back or
      // committed) by itself: terminating it with the parent would strand the guest between two hosts.
      // Cancelling the group still asks each child to cancel, which it does cleanly.
      parentClosePolicy: ParentClosePolicy.ABANDON,
      typedSearchAttributes: [
        { key: GuestIdKey, value: input.guestId },
        { key: GuestNameKey, value: member.guestName },
        { key: SourceHostKey, value: member.sourceHost },
        { key: MigrationKindKey, value: 'live' },
        { key: MigrationTriggerKey, value: member.trigger },
      ],
    });
    return { ...base, outcome: 'completed', destination: result.destination, error: null };
  } catch (err) {
    const reason = failureReason(err);
    if (/already (started|running)/i.test(reason)) {
      // The child never ran, so nobody else will close its row.
      await setMigrationPhase({ migrationId: input.migrationId, phase: 'failed', error: `${reason}` });
    }
    return {
      ...base,
      outcome: isCancellation(err) ? 'cancelled' : 'failed',
      destination: null,
      error: reason,
    };
  }
}
