export { createGuest } from './create-guest.ts';
export { liveMigrate } from './live-migrate.ts';
export { migrationSlots } from './migration-slots.ts';
