import { ApiError } from './errors.ts';

/** 409 naming the guest's running migration, or saying it is still starting (or its last run still closing). */
export const alreadyRunning = (guestName: string, migrationId: string | undefined) =>
  new ApiError(
    409,
    'migration_in_progress',
    `server '${guestName}' already has a running migration ${migrationId ?? '(starting)'}`,
    undefined,
    { migrationId: migrationId ?? null },
  );
