import { holdsLiveCopy } from './cold-migration.ts';

/** What a host that holds a lease again does with one guest its agent still has. */
export type ReturnedCopyAction =
  | { action: 'remove'; reason: string }
  | { action: 'restart'; reason: string }
  | { action: 'leave'; reason: string }
  | { action: 'keep'; reason: string };

/**
 * The inventory decides: a copy of a guest placed elsewhere (rescued while the host was gone) or deleted goes; the
 * host's own guest that should run but was fenced starts again; a guest with a migration in flight is that
 * migration's to settle; anything else stays as it is.
 */
export function returnedCopyAction(input: {
  hostId: string;
  /** The agent's run state of its copy. */
  copyState: string;
  /** The inventory's row, or null when the guest is gone from it. */
  placed: { hostId: string; status: string } | null;
  migrationInFlight: boolean;
}): ReturnedCopyAction {
  const { placed } = input;
  if (placed && input.migrationInFlight) return { action: 'leave', reason: 'a migration of it is in flight' };
  if (!placed) return { action: 'remove', reason: 'the guest no longer exists' };
  if (placed.hostId !== input.hostId) return { action: 'remove', reason: 'it runs elsewhere now' };
  if (placed.status === 'running' && !holdsLiveCopy(input.copyState)) {
    return { action: 'restart', reason: 'it should run and was fenced' };
  }
  return { action: 'keep', reason: 'as the inventory has it' };
}
