/** A guest's status in the inventory (Cloudpods' words: `ready` is stopped and placed). */
export const guestStatuses = [
  'creating',
  'running',
  'stopped',
  'migrating',
  'ready',
  'error',
  'deleting',
] as const;

export type GuestStatus = (typeof guestStatuses)[number];
