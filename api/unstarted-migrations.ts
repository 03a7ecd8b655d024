import type { Client } from '@temporalio/client';
import type { Db } from '../db/client.ts';
import { closeUnstartedMigration } from '../db/migration-store.ts';
import type { Migration } from '../db/schema.ts';
import { liveMigrationGroupWorkflowId } from '../domain/workflow-ids.ts';
import { workflowIsRunning } from './workflow-runs.ts';

export const NEVER_STARTED_REASON =
  'never started: the API stopped between recording the request and starting its workflow';

/**
 * A migration still 'pending' whose workflow (or, for a with_same_labels member, whose group's workflow) is not
 * running never started: the API recorded it and stopped before starting the run. Call it holding the guest's
 * migration lock, so a request that is starting the workflow right now is not mistaken for a dead one.
 */
export async function neverStarted(temporal: Client, row: Migration): Promise<boolean> {
  if (row.phase !== 'pending') return false;
  if (await workflowIsRunning(temporal, row.workflowId)) return false;
  return (
    row.groupId === null || !(await workflowIsRunning(temporal, liveMigrationGroupWorkflowId(row.groupId)))
  );
}

/** Fails the guest's active migration if it never started, so a new request can take its place. */
export async function reapIfNeverStarted(temporal: Client, db: Db, row: Migration): Promise<boolean> {
  if (!(await neverStarted(temporal, row))) return false;
  await closeUnstartedMigration(db, row.id, 'failed', NEVER_STARTED_REASON);
  return true;
}
