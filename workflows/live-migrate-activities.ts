import { ActivityCancellationType, proxyActivities, proxyLocalActivities } from '@temporalio/workflow';
import type { Activities } from '../activities/index.ts';
import type { LiveMigrationTimings } from '../domain/live-migration.ts';

/**
 * How the live migration calls its activities. Before the switch-over a step that keeps failing fails the
 * migration, which then rolls back; `durable` steps (the switch-over onwards, and every compensation) retry
 * until they succeed, since giving up there would strand a guest that runs on one host while the records
 * name another. Retries inside one activity add nothing to the workflow's history.
 */
export const quick = proxyActivities<Activities>({
  startToCloseTimeout: '30 seconds',
  retry: { initialInterval: '500 milliseconds', maximumInterval: '5 seconds', maximumAttempts: 10 },
});

export const agentCalls = proxyActivities<Activities>({
  startToCloseTimeout: '2 minutes',
  // The calls heartbeat while the agent works (activities/heartbeat-while.ts): a worker lost mid-call is
  // noticed within this, not after the 2 minutes, and the idempotent call is retried on another worker.
  heartbeatTimeout: '10 seconds',
  retry: { initialInterval: '1 second', maximumInterval: '10 seconds', maximumAttempts: 6 },
  // A cancelled prepare runs to its end before the rollback looks: else it could start an incoming QEMU
  // after the rollback destroyed the destination.
  cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
});

const untilDone = {
  initialInterval: '1 second',
  backoffCoefficient: 2,
  maximumInterval: '30 seconds',
} as const;

/** Bounded by the agent client's own 30 s timeout: a worker lost mid-call is noticed within 45 s. */
export const durable = proxyActivities<Activities>({
  startToCloseTimeout: '45 seconds',
  retry: untilDone,
});

/**
 * The same two kinds of step as local activities, for the database-only steps (phase, event, plan, reserve,
 * slot, commit) and, after the copy, the two short agent calls (the destination's state, the source's
 * clean-up): they run in the worker beside the workflow task, so a run of them costs no round trip through
 * the server each. Agent calls that may take long (the alive check, a resume) stay ordinary activities.
 */
export const localQuick = proxyLocalActivities<Activities>({
  startToCloseTimeout: '30 seconds',
  retry: { initialInterval: '500 milliseconds', maximumInterval: '5 seconds', maximumAttempts: 10 },
});

export const localDurable = proxyLocalActivities<Activities>({
  startToCloseTimeout: '45 seconds',
  retry: untilDone,
});

/**
 * The network probe as a local activity: a few short, read-only agent calls. Run locally it overlaps the slot
 * acquisition for real (commands of ordinary activities leave only when the workflow task completes).
 */
export const localProbe = proxyLocalActivities<Activities>({
  startToCloseTimeout: '30 seconds',
  retry: { initialInterval: '1 second', maximumInterval: '10 seconds', maximumAttempts: 6 },
});

/**
 * The two agent calls that lead to `migrate` (prepare the destination, start the copy) as local activities:
 * with them the whole way from the request to `migrate` runs in one workflow task, where each ordinary
 * activity cost a round trip through the server (tens of milliseconds each). They stay idempotent agent
 * calls; a worker lost meanwhile loses its workflow task, and the next one runs them again.
 */
export const localAgentCalls = proxyLocalActivities<Activities>({
  startToCloseTimeout: '2 minutes',
  retry: { initialInterval: '1 second', maximumInterval: '10 seconds', maximumAttempts: 6 },
  // As for agentCalls: a cancelled prepare runs to its end before the rollback looks.
  cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
});

/** How a run makes its database-only steps: as activities (runs begun before local steps), or local ones. */
export interface RunSteps {
  decide: typeof quick;
  write: typeof durable;
}

export const activitySteps: RunSteps = { decide: quick, write: durable };
export const localSteps: RunSteps = { decide: localQuick, write: localDurable };

/** The long durable steps (the alive check, settling the source) heartbeat; a lost worker shows at once. */
export function watchedFor(timings: LiveMigrationTimings) {
  return proxyActivities<Activities>({
    startToCloseTimeout: '30 minutes',
    heartbeatTimeout: timings.activityHeartbeatTimeoutMs,
    retry: untilDone,
  });
}

export function monitorFor(timings: LiveMigrationTimings) {
  return proxyActivities<Activities>({
    startToCloseTimeout: '24 hours',
    heartbeatTimeout: timings.activityHeartbeatTimeoutMs,
    cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
    retry: { initialInterval: '1 second', maximumInterval: '10 seconds', maximumAttempts: 20 },
  });
}

/**
 * The slot's lease is kept by one heartbeating activity for as long as the migration holds the slot (it
 * heartbeats at a third of this timeout, whatever its renewal interval).
 */
export function keepSlotLeaseFor(timings: LiveMigrationTimings) {
  return proxyActivities<Activities>({
    startToCloseTimeout: '7 days',
    heartbeatTimeout: timings.activityHeartbeatTimeoutMs,
    // The release does not wait for the keeper to stop (that takes up to a heartbeat): the slots
    // workflow ignores a renewal that arrives after the release.
    retry: { initialInterval: '1 second', maximumInterval: '10 seconds' },
  });
}

/** A cold migration's disk copy: one heartbeating activity per disk, retried a few times (the import restarts). */
export function diskCopyFor(timings: LiveMigrationTimings) {
  return proxyActivities<Activities>({
    startToCloseTimeout: '24 hours',
    heartbeatTimeout: timings.activityHeartbeatTimeoutMs,
    retry: { initialInterval: '1 second', maximumInterval: '10 seconds', maximumAttempts: 3 },
  });
}
