import {
  CancellationScope,
  executeChild,
  isCancellation,
  ParentClosePolicy,
  patched,
  proxyActivities,
  proxyLocalActivities,
  workflowInfo,
} from '@temporalio/workflow';
import type { Activities } from '../activities/index.ts';
import {
  DEFAULT_ALERT_CYCLE_TIMINGS,
  type AlertCycleInput,
  type AlertCycleMoveOutcome,
  type AlertCycleOutcome,
  type AlertCycleTimings,
} from '../domain/alert-cycle.ts';
import {
  batchStartEvents,
  migratingEvent,
  migrationOutcomeEvent,
  type RecordedMove,
  skippedEvent,
  type AlertCyclePlan,
  type AlertMove,
} from '../domain/alert-events.ts';
import { DEFAULT_LIVE_MIGRATE_OPTIONS } from '../domain/live-migration.ts';
import { guestRunWorkflowId, liveMigrationWorkflowId } from '../domain/workflow-ids.ts';
import { migrationSummary } from '../domain/workflow-summaries.ts';
import { WORKFLOW_IDS_WITH_NAMES } from './workflow-patches.ts';

/** A cycle's moves are recorded by one activity and their events by another, before the children start. */
export const ALERT_MOVES_RECORDED_TOGETHER = 'alert-moves-recorded-together';
/**
 * The lock is taken, and the moves recorded with their events, by local activities: short database and Temporal
 * calls that cost a round trip through the server each as ordinary activities (0.2–0.4 s before fifty children
 * could start on a loaded machine).
 */
export const ALERT_BATCH_STARTED_LOCALLY = 'alert-batch-started-locally';
import { failureReason } from './failure-reason.ts';
import { liveMigrate } from './live-migrate.ts';
import {
  GuestIdKey,
  GuestNameKey,
  MigrationKindKey,
  MigrationTriggerKey,
  SourceHostKey,
} from './search-attributes.ts';

const quick = proxyActivities<Activities>({
  startToCloseTimeout: '1 minute',
  retry: { initialInterval: '1 second', maximumInterval: '10 seconds', maximumAttempts: 5 },
});

/** The same retries, run in the worker beside the workflow task. */
const local = proxyLocalActivities<Activities>({
  startToCloseTimeout: '1 minute',
  retry: { initialInterval: '1 second', maximumInterval: '10 seconds', maximumAttempts: 5 },
});

/** The lock must be released whatever happens; the lock's own lease is the last resort. */
const untilDone = proxyActivities<Activities>({
  startToCloseTimeout: '30 seconds',
  retry: { initialInterval: '1 second', maximumInterval: '30 seconds', maximumAttempts: 20 },
});

function leaseKeeper(timings: AlertCycleTimings) {
  return proxyActivities<Activities>({
    startToCloseTimeout: '24 hours',
    heartbeatTimeout: Math.max(10_000, timings.lockRenewIntervalMs * 3),
    retry: {
      initialInterval: '1 second',
      maximumInterval: '10 seconds',
      nonRetryableErrorTypes: ['MigrationLockLost'],
    },
  });
}

/**
 * One evaluation of a migration-alert rule, started by the rule's Temporal Schedule: plan from the metrics
 * (domain/alert-planner.ts), take the `migration-lock` without waiting (skip the cycle if another rule's batch
 * holds it), run the moves as child live migrations under the cluster's limits, record each, release the lock.
 */
export async function alertCycle(input: AlertCycleInput): Promise<AlertCycleOutcome> {
  const timings = input.timings ?? DEFAULT_ALERT_CYCLE_TIMINGS;
  const { workflowId, runId } = workflowInfo();
  const cycleKey = `${workflowId}/${runId}`;
  const plan = await quick.planAlertCycle({ ruleId: input.ruleId, cycleKey });
  if (!plan) return { outcome: 'rule-gone' };
  if (plan.moves.length === 0) return { outcome: 'nothing-to-move' };

  const owner = cycleKey;
  const startLocally = patched(ALERT_BATCH_STARTED_LOCALLY);
  const lock = await (startLocally ? local : quick).tryAcquireMigrationLock({
    owner,
    description: `rule ${plan.ruleName} (${workflowId})`,
    leaseMs: timings.lockLeaseMs,
  });
  if (!lock.granted) {
    const event = skippedEvent(lock.holder.description, cycleKey, plan.moves.length);
    await quick.recordAlertEvent({ ruleId: plan.ruleId, event });
    return { outcome: 'skipped', holder: lock.holder.description };
  }

  let lockLost = false;
  const keeper = new CancellationScope();
  const keeping = keeper
    .run(() =>
      leaseKeeper(timings).keepMigrationLockLease({
        owner,
        leaseMs: timings.lockLeaseMs,
        renewIntervalMs: timings.lockRenewIntervalMs,
      }),
    )
    .catch((err: unknown) => {
      if (!isCancellation(err)) lockLost = true;
    });
  try {
    const moves = patched(ALERT_MOVES_RECORDED_TOGETHER)
      ? await runMovesRecordedTogether(plan, timings, cycleKey, () => lockLost, startLocally)
      : await Promise.all(plan.moves.map((move) => runMove(plan, move, timings, cycleKey, () => lockLost)));
    return { outcome: 'migrated', moves, lockLost };
  } finally {
    keeper.cancel();
    await CancellationScope.nonCancellable(async () => {
      await keeping;
      await untilDone.releaseMigrationLock({ owner });
    });
  }
}

async function runMove(
  plan: AlertCyclePlan,
  move: AlertMove,
  timings: AlertCycleTimings,
  cycleKey: string,
  lockLost: () => boolean,
): Promise<AlertCycleMoveOutcome> {
  const base = { guest: move.guestId, from: move.fromHostId, to: move.toHostId };
  const record = (event: Parameters<Activities['recordAlertEvent']>[0]['event']) =>
    quick.recordAlertEvent({ ruleId: plan.ruleId, event });
  if (lockLost()) {
    const error = 'the migration lock was lost before this move started';
    await record(
      migrationOutcomeEvent(move, { migrationId: null, ok: false, error, destination: null }, cycleKey),
    );
    return { ...base, migrationId: null, outcome: 'refused', error };
  }
  // Moves started before names joined the ids keep the bare-id form on replay.
  const workflowId = patched(WORKFLOW_IDS_WITH_NAMES)
    ? guestRunWorkflowId('live-migrate', { id: move.guestId, name: move.guestName })
    : liveMigrationWorkflowId(move.guestId);
  const recorded = await quick.recordAlertMigration({ ruleId: plan.ruleId, cycleKey, move, workflowId });
  if ('refused' in recorded) {
    const error = recorded.refused;
    await record(
      migrationOutcomeEvent(move, { migrationId: null, ok: false, error, destination: null }, cycleKey),
    );
    return { ...base, migrationId: null, outcome: 'refused', error };
  }
  const { migrationId } = recorded;
  await record(migratingEvent(move, migrationId, cycleKey));
  return runChild(plan, move, migrationId, workflowId, timings, cycleKey);
}

/**
 * The cycle's moves and their `migrating` events recorded together (one local activity; two ordinary ones before
 * ALERT_BATCH_STARTED_LOCALLY), then every child started: fifty moves took a hundred activities before the last
 * child started (5.6 s on a loaded two-core machine).
 */
async function runMovesRecordedTogether(
  plan: AlertCyclePlan,
  timings: AlertCycleTimings,
  cycleKey: string,
  lockLost: () => boolean,
  startLocally: boolean,
): Promise<AlertCycleMoveOutcome[]> {
  const base = (move: AlertMove) => ({ guest: move.guestId, from: move.fromHostId, to: move.toHostId });
  const refused = (move: AlertMove, error: string): AlertCycleMoveOutcome => ({
    ...base(move),
    migrationId: null,
    outcome: 'refused',
    error,
  });
  const refusedEvent = (move: AlertMove, error: string) =>
    migrationOutcomeEvent(move, { migrationId: null, ok: false, error, destination: null }, cycleKey);
  if (lockLost()) {
    const error = 'the migration lock was lost before this move started';
    await quick.recordAlertEvents({
      ruleId: plan.ruleId,
      events: plan.moves.map((m) => refusedEvent(m, error)),
    });
    return plan.moves.map((move) => refused(move, error));
  }
  const workflowIds = plan.moves.map((move) =>
    guestRunWorkflowId('live-migrate', { id: move.guestId, name: move.guestName }),
  );
  const batch = {
    ruleId: plan.ruleId,
    cycleKey,
    moves: plan.moves.map((move, i) => ({ move, workflowId: workflowIds[i]! })),
  };
  let recorded: RecordedMove[];
  if (startLocally) {
    recorded = await local.recordAlertBatch(batch);
  } else {
    recorded = await quick.recordAlertMigrations(batch);
    await quick.recordAlertEvents({
      ruleId: plan.ruleId,
      events: batchStartEvents(plan.moves, recorded, cycleKey),
    });
  }
  return Promise.all(
    plan.moves.map((move, i) => {
      const outcome = recorded[i]!;
      if ('refused' in outcome) return refused(move, outcome.refused);
      return runChild(plan, move, outcome.migrationId, workflowIds[i]!, timings, cycleKey);
    }),
  );
}

/** One move's child migration, from its start to its outcome event. */
async function runChild(
  plan: AlertCyclePlan,
  move: AlertMove,
  migrationId: string,
  workflowId: string,
  timings: AlertCycleTimings,
  cycleKey: string,
): Promise<AlertCycleMoveOutcome> {
  const base = { guest: move.guestId, from: move.fromHostId, to: move.toHostId };
  const record = (event: Parameters<Activities['recordAlertEvent']>[0]['event']) =>
    quick.recordAlertEvent({ ruleId: plan.ruleId, event });
  try {
    await executeChild(liveMigrate, {
      workflowId,
      staticSummary: migrationSummary({
        guest: move.guestName,
        source: move.fromHostName,
        destination: move.toHostName,
        kind: 'live',
        trigger: 'alert',
      }),
      args: [
        {
          migrationId,
          guestId: move.guestId,
          options: { ...DEFAULT_LIVE_MIGRATE_OPTIONS, preferHost: move.toHostId },
          caller: { role: 'admin' },
          timings: timings.migration,
        },
      ],
      // A started migration must reach a terminal phase by itself whatever happens to the cycle.
      parentClosePolicy: ParentClosePolicy.ABANDON,
      typedSearchAttributes: [
        { key: GuestIdKey, value: move.guestId },
        { key: GuestNameKey, value: move.guestName },
        { key: SourceHostKey, value: move.fromHostName },
        { key: MigrationKindKey, value: 'live' },
        { key: MigrationTriggerKey, value: 'alert' },
      ],
    });
    await record(
      migrationOutcomeEvent(move, { migrationId, ok: true, error: null, destination: null }, cycleKey),
    );
    return { ...base, migrationId, outcome: 'completed', error: null };
  } catch (err) {
    const error = failureReason(err);
    if (/already (started|running)/i.test(error)) {
      // The child never ran, so nobody else will close its row.
      await quick.setMigrationPhase({ migrationId, phase: 'failed', error });
    }
    await record(migrationOutcomeEvent(move, { migrationId, ok: false, error, destination: null }, cycleKey));
    return { ...base, migrationId, outcome: 'failed', error };
  }
}
