export { createGuest } from './create-guest.ts';
export { liveMigrate } from './live-migrate.ts';
export { liveMigrateGroup } from './live-migrate-group.ts';
export { migrationSlots } from './migration-slots.ts';
