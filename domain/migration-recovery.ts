import type { GuestRunState, MigrationStatus, MigrationStatusName } from './agent-contract.ts';

/**
 * What a failed or cancelled live migration does next, decided on the agents' real state (never on a
 * progress sample that may be seconds old). The invariant behind every rule: the guest executes on at
 * most one host, and the only valid copy of it is never destroyed.
 */
export type CopyRecovery =
  /** QEMU completed the copy before the cancel landed: the destination holds the guest; go on to verify it. */
  | { kind: 'roll-forward'; reason: string }
  /** Post-copy began: the guest's memory is split between the hosts; the copy must finish on the destination. */
  | { kind: 'finish-post-copy'; reason: string }
  /** The source still holds the only valid copy: destroy the destination, resume the source. */
  | { kind: 'roll-back'; reason: string };

/** Statuses after which the source's QEMU will not change on its own (cancel has taken effect or come too late). */
const settledStatuses: ReadonlySet<MigrationStatusName> = new Set([
  'none',
  'completed',
  'failed',
  'cancelled',
  'postcopy-active',
]);

/** Whether a cancel has landed for good: waiting longer would not change which copy is the valid one. */
export function isSourceSettled(status: Pick<MigrationStatus, 'status'>): boolean {
  return settledStatuses.has(status.status);
}

/**
 * After a failure or a cancel during the copy, once the source's migration is settled: which copy is valid.
 * `migrationId` guards against reading another migration's status (a record of an older one).
 */
export function recoveryAfterCopy(
  migrationId: string,
  source: Pick<MigrationStatus, 'status' | 'migrationId' | 'postCopyStarted'>,
  destination: GuestRunState | null = null,
): CopyRecovery {
  const ours = source.migrationId === migrationId;
  // An incoming QEMU runs (or holds the guest paused) only once it received the whole state: whatever the
  // source says (it may have lost the guest with its host), the destination holds the valid copy.
  if (destination === 'running' || destination === 'paused') {
    return {
      kind: 'roll-forward',
      reason: `the destination ${destination === 'running' ? 'runs' : 'holds'} the guest: the copy completed`,
    };
  }
  if (ours && (source.postCopyStarted === true || source.status === 'postcopy-active')) {
    return {
      kind: 'finish-post-copy',
      reason: `post-copy began (source reports ${source.status}): the source's memory is stale, the copy must finish on the destination`,
    };
  }
  if (ours && source.status === 'completed') {
    return {
      kind: 'roll-forward',
      reason: 'QEMU completed the copy before the cancel landed: the destination holds the guest',
    };
  }
  return {
    kind: 'roll-back',
    reason: ours
      ? `source reports the migration ${source.status}: it still holds the only valid copy`
      : `source reports no migration ${migrationId} (it knows ${source.migrationId ?? 'none'}): it still holds the guest`,
  };
}

/** What to do when the destination's guest showed no sign of life after the switch-over. */
export type DeadDestinationPlan =
  /** Post-copy ran: the source's memory is stale and must never run; the destination is the only copy. */
  | { kind: 'keep-destination'; reason: string }
  /** Pre-copy completed: stop the destination first (destroy it, or pause it when kept), then resume the source. */
  | { kind: 'back-to-source'; destination: 'destroy' | 'pause'; reason: string };

export function planForDeadDestination(input: {
  postCopyStarted: boolean;
  keepDestGuestOnFailed: boolean;
}): DeadDestinationPlan {
  if (input.postCopyStarted) {
    return {
      kind: 'keep-destination',
      reason:
        'post-copy ran, so the source holds stale memory and must never run again: the guest stays on the destination',
    };
  }
  return {
    kind: 'back-to-source',
    destination: input.keepDestGuestOnFailed ? 'pause' : 'destroy',
    reason: input.keepDestGuestOnFailed
      ? 'pre-copy completed: the destination is paused and kept for debugging, then the source resumes'
      : 'pre-copy completed: the destination is destroyed, then the source resumes',
  };
}

/** How a rollback treats the destination guest it finds; never a guest that may be the only running copy. */
export type DestinationCleanup = 'nothing' | 'destroy' | 'pause' | 'leave-incoming' | 'leave-running';

/**
 * Rollback of a migration whose source still holds the valid copy. A destination that runs or holds the guest
 * paused received the whole state: it is never destroyed by a rollback (the records are set right by whoever
 * finds it; `leave-running` says so).
 */
export function destinationCleanup(
  destination: GuestRunState | null,
  keepDestGuestOnFailed: boolean,
): DestinationCleanup {
  if (destination === null) return 'nothing';
  if (destination === 'running' || destination === 'paused') return 'leave-running';
  return keepDestGuestOnFailed ? 'leave-incoming' : 'destroy';
}

/** Where a guest is found running when a step after the switch-over failed in a way retrying cannot fix. */
export type FoundRunning = 'destination' | 'source' | 'nowhere';

/**
 * The records follow the guest: the destination when it runs there (it is the newer copy), else the source
 * when it runs there, else nowhere (the row says so until an operator steps in).
 */
export function whereTheGuestRuns(
  source: GuestRunState | null,
  destination: GuestRunState | null,
): FoundRunning {
  if (destination === 'running') return 'destination';
  if (source === 'running') return 'source';
  return 'nowhere';
}
