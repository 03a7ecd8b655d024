/** Workflow ids make starts idempotent: one run per subject at a time. */

/** The runs that act on one guest, one at a time per kind. */
export type GuestRunKind = 'live-migrate' | 'cold-migrate' | 'guest-create' | 'guest-power';

/**
 * A guest's run id carries its name, so an operator finds it in the Temporal UI, and its id, which alone
 * keeps it unique: a name can come back on another guest. Runs started before names joined the ids have the
 * bare-id forms below; the migration rows keep each run's id, so both stay reachable.
 */
export const guestRunWorkflowId = (kind: GuestRunKind, guest: { id: string; name: string }) =>
  `${kind}-${guest.name}-${guest.id}`;

/** An evacuation's id carries the host's name, as a guest's run does (the host's id keeps it unique). */
export const evacuationWorkflowId = (host: { id: string; name: string }) =>
  `evacuate-host-${host.name}-${host.id}`;

export const createGuestWorkflowId = (guestId: string) => `guest-create-${guestId}`;

/** One live migration per guest at a time: Temporal refuses a second run with the same id. */
export const liveMigrationWorkflowId = (guestId: string) => `live-migrate-${guestId}`;

/** One slots workflow per cluster serialises the start of its live migrations. */
export const migrationSlotsWorkflowId = (clusterId: string) => `migration-slots-${clusterId}`;

/** A with_same_labels request: one parent run over the children's liveMigrate runs. */
export const liveMigrationGroupWorkflowId = (groupId: string) => `live-migrate-group-${groupId}`;

/** The singleton that lets one alert-triggered batch migrate at a time (F23). */
export const MIGRATION_LOCK_WORKFLOW_ID = 'migration-lock';

/** A rule's Temporal Schedule, named after the rule so the UI lists it by name. */
export const alertScheduleId = (ruleName: string) => `migration-alert-${ruleName}`;
export const ALERT_SCHEDULE_PREFIX = 'migration-alert-';

/** The workflow id a rule's schedule gives each cycle (Temporal appends the scheduled time). */
export const alertCycleWorkflowId = (ruleName: string) => `alert-cycle-${ruleName}`;

/** One stop or start of a guest at a time. */
export const guestPowerWorkflowId = (guestId: string) => `guest-power-${guestId}`;

/** One cold or rescue migration per guest at a time. */
export const coldMigrationWorkflowId = (guestId: string) => `cold-migrate-${guestId}`;

/** One host-down run per host and lost lease: every worker's watcher may start it, only one runs. */
export const hostDownWorkflowId = (hostId: string, leaseHex: string) => `host-down-${hostId}-${leaseHex}`;

/** One reconciliation per host and lease it came back with. */
export const hostReturnWorkflowId = (hostId: string, leaseHex: string) => `host-return-${hostId}-${leaseHex}`;

/** One evacuation of a host at a time: entering maintenance twice joins the running one. */
export const evacuateHostWorkflowId = (hostId: string) => `evacuate-host-${hostId}`;
