import { alertActivities, type AlertActivityDeps } from './alert-activities.ts';
import { coldMigrationActivities } from './cold-migration-activities.ts';
import { decisionActivities } from './migration-decisions.ts';
import { diskCopyActivities } from './disk-copy-activities.ts';
import { hostDownActivities } from './host-down-activities.ts';
import { guestActivities, type GuestActivityDeps } from './guest-activities.ts';
import { migrationActivities, type MigrationActivityDeps } from './migration-activities.ts';
import { recoveryActivities } from './migration-recovery.ts';
import { retentionActivities } from './retention-activities.ts';
import { migrationLockActivities, type MigrationLockDeps } from './migration-lock-activities.ts';
import { slotActivities } from './slot-activities.ts';

export type ActivityDeps = GuestActivityDeps & MigrationActivityDeps & AlertActivityDeps & MigrationLockDeps;

export function createActivities(deps: ActivityDeps) {
  return {
    ...guestActivities(deps),
    ...migrationActivities(deps),
    ...decisionActivities(deps),
    ...coldMigrationActivities(deps),
    ...diskCopyActivities(deps),
    ...hostDownActivities(deps),
    ...recoveryActivities(deps),
    ...slotActivities(deps),
    ...migrationLockActivities(deps),
    ...alertActivities(deps),
    ...retentionActivities(deps),
  };
}

export type Activities = ReturnType<typeof createActivities>;
