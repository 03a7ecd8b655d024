export { alertCycle } from './alert-cycle.ts';
export { createGuest } from './create-guest.ts';
export { guestPower } from './guest-power.ts';
export { liveMigrate } from './live-migrate.ts';
export { liveMigrateGroup } from './live-migrate-group.ts';
export { migrationSlots } from './migration-slots.ts';
export { migrationLock } from './migration-lock.ts';
