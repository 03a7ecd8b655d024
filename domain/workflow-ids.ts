/** Workflow ids make starts idempotent: one run per subject at a time. */
export const createGuestWorkflowId = (guestId: string) => `guest-create-${guestId}`;

/** One live migration per guest at a time: Temporal refuses a second run with the same id. */
export const liveMigrationWorkflowId = (guestId: string) => `live-migrate-${guestId}`;

/** One slots workflow per cluster serialises the start of its live migrations. */
export const migrationSlotsWorkflowId = (clusterId: string) => `migration-slots-${clusterId}`;

/** A with_same_labels request: one parent run over the children's liveMigrate runs. */
export const liveMigrationGroupWorkflowId = (groupId: string) => `live-migrate-group-${groupId}`;
