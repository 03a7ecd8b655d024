import {
  WorkflowExecutionAlreadyStartedError,
  WorkflowIdConflictPolicy,
  WorkflowIdReusePolicy,
  type WorkflowHandleWithFirstExecutionRunId,
} from '@temporalio/client';
import { deleteMigration, findMigration } from '../db/migration-store.ts';
import type { Db } from '../db/client.ts';
import { findGuest, findHost } from '../db/inventory.ts';
import type { Guest, Host, Migration } from '../db/schema.ts';
import { precheckVerdict } from './await-prechecks.ts';
import type { ColdMigrateInput } from '../workflows/cold-migrate.ts';
import type { LiveMigrateInput } from '../workflows/live-migrate.ts';
import { migrationSummary } from '../domain/workflow-summaries.ts';
import {
  GuestIdKey,
  GuestNameKey,
  MigrationKindKey,
  MigrationTriggerKey,
  SourceHostKey,
} from '../workflows/search-attributes.ts';
import { alreadyRunning } from './already-running.ts';
import { requireProjectScope, type ApiCaller } from './caller.ts';
import type { ApiDeps } from './deps.ts';
import { ApiError, notFound } from './errors.ts';
import { migrationDetail } from './migration-views.ts';
import { underGuestMigrationLock } from './guest-migration-lock.ts';
import { recordPendingMigration } from './pending-migration.ts';
import { startOnceThePreviousRunCloses } from './workflow-runs.ts';

type MigrationRun = (
  | { workflowType: 'liveMigrate'; kind: 'live'; input: (migrationId: string) => LiveMigrateInput }
  | {
      workflowType: 'coldMigrate';
      kind: 'cold' | 'rescue';
      input: (migrationId: string) => ColdMigrateInput;
    }
) & {
  /** Who asks: recorded on the row as its requester. */
  caller: ApiCaller;
};

/**
 * Records an operator's migration of a guest (`pending`) and starts its workflow, both under the guest's
 * migration lock: a request that recorded its migration and is starting the run right now is never mistaken
 * for one that stopped in between.
 */
export async function startGuestMigration(
  deps: ApiDeps,
  guest: Pick<Guest, 'id' | 'name' | 'hostId'>,
  sourceName: string,
  run: MigrationRun & { workflowId: string; options: Record<string, unknown> },
): Promise<{ migration: Migration; handle: WorkflowHandleWithFirstExecutionRunId }> {
  const { db, temporal, taskQueue } = deps;
  const { workflowId } = run;
  return underGuestMigrationLock(db, [guest], async (locked) => {
    const row = await recordPendingMigration(locked, temporal, guest, {
      kind: run.kind,
      sourceHostId: guest.hostId,
      trigger: 'manual',
      options: run.options,
      workflowId,
      requestedBy: run.caller.requester,
    });
    try {
      const started = await startOnceThePreviousRunCloses(() =>
        temporal.workflow.start(run.workflowType, {
          taskQueue,
          workflowId,
          args: [run.input(row.id)],
          workflowIdConflictPolicy: WorkflowIdConflictPolicy.FAIL,
          workflowIdReusePolicy: WorkflowIdReusePolicy.ALLOW_DUPLICATE,
          staticSummary: migrationSummary({
            guest: guest.name,
            source: sourceName,
            destination: typeof run.options.preferHost === 'string' ? run.options.preferHost : null,
            kind: run.kind,
            trigger: 'manual',
          }),
          typedSearchAttributes: [
            { key: GuestIdKey, value: guest.id },
            { key: GuestNameKey, value: guest.name },
            { key: SourceHostKey, value: sourceName },
            { key: MigrationKindKey, value: run.kind },
            { key: MigrationTriggerKey, value: 'manual' },
          ],
        }),
      );
      return { migration: row, handle: started };
    } catch (err) {
      if (err instanceof WorkflowExecutionAlreadyStartedError) {
        // Temporal refused the run, so nothing will ever act on the row: it goes.
        await deleteMigration(locked, row.id);
        throw alreadyRunning(guest.name, undefined);
      }
      // The run may or may not have started: the row stays pending, and the next request for the guest
      // fails it if its workflow is not running.
      throw new ApiError(
        503,
        'unavailable',
        `could not start the migration workflow: ${(err as Error).message}`,
        undefined,
        { migrationId: row.id },
      );
    }
  });
}

/**
 * The target of an operator's migrate request: the guest (404 if unknown; 403 naming its project when the caller's
 * token is limited to other projects), its source host, and `prefer_host` checked to exist (400 naming the field),
 * all before anything is recorded.
 */
export async function migrationTarget(db: Db, caller: ApiCaller, id: string, preferHost: string | undefined) {
  const guest = await findGuest(db, id);
  if (!guest) throw notFound('server', id);
  requireProjectScope(caller, `server '${guest.name}'`, guest.project);
  if (preferHost !== undefined && !(await findHost(db, preferHost))) {
    throw new ApiError(
      400,
      'invalid_request',
      `prefer_host: no host with id or name '${preferHost}'`,
      'prefer_host',
    );
  }
  return { guest, source: await findHost(db, guest.hostId) };
}

/**
 * Records and starts the migration, then answers as a migrate request does: the migration as GET
 * /v1/migrations/:id shows it once the pre-checks have spoken (a 422 when they failed), with the destination
 * they chose even before the run writes it on the record.
 */
export async function answerGuestMigration(
  deps: ApiDeps,
  target: { guest: Guest; source: Host | undefined },
  run: MigrationRun & { workflowId: string; options: Record<string, unknown> },
) {
  const { guest, source } = target;
  const { migration } = await startGuestMigration(deps, guest, source?.name ?? guest.hostId, run);
  const verdict = await precheckVerdict(deps, migration.id);
  const row = (await findMigration(deps.db, migration.id)) ?? migration;
  const detail = await migrationDetail(deps.db, row, guest.name);
  return { ...detail, destination: detail.destination ?? verdict.destination };
}
