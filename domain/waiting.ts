/**
 * Steps that retry until they succeed say what they wait for: once when the wait becomes noticeable, then
 * again every so often, never once per attempt (an outage of minutes would flood the events).
 */
export const FIRST_WAITING_ATTEMPT = 3;
export const WAITING_REPEAT_EVERY = 10;

export function shouldReportWaiting(attempt: number): boolean {
  return attempt >= FIRST_WAITING_ATTEMPT && (attempt - FIRST_WAITING_ATTEMPT) % WAITING_REPEAT_EVERY === 0;
}

/** What each retried step waits for, in an operator's words. */
const waitingFor: Record<string, string> = {
  setMigrationPhase: 'PostgreSQL, to record the migration phase',
  recordMigrationEvent: 'PostgreSQL, to record a migration event',
  commitMigration: 'PostgreSQL, to record the guest on its new host',
  releaseDestination: 'PostgreSQL, to release the reservation',
  markGuestRunning: 'PostgreSQL, to mark the guest running',
  markGuestError: 'PostgreSQL, to mark the guest in error',
  cleanupSource: 'the source agent, to clean up the old QEMU',
  settleSourceMigration: "the source agent, to learn whether QEMU's copy completed",
  readGuestState: 'an agent, to read the guest state',
  resumeGuestOn: 'the destination agent, to resume the guest',
  resumeSourceGuest: 'the source agent, to resume the guest',
  destroyDestinationGuest: 'the destination agent, to remove its copy',
  pauseGuestOn: 'the destination agent, to pause its kept copy',
  verifyGuestAlive: "the destination agent, to ping the guest's agent or read its heartbeat",
  keepSlotLease: "the cluster's migration slots workflow, to renew the slot",
};

export function waitingMessage(activityType: string, attempt: number, waitedMs: number): string {
  const what = waitingFor[activityType] ?? `step ${activityType}`;
  return `waiting for ${what}: ${attempt - 1} attempts failed over ${Math.round(waitedMs / 1000)} s; retrying until it succeeds`;
}
