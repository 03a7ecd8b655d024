import { ParentClosePolicy, patched, proxyActivities, startChild } from '@temporalio/workflow';
import type { Activities } from '../activities/index.ts';
import type { ColdMigrateOptions } from '../domain/cold-migration.ts';
import { DEFAULT_LIVE_MIGRATE_OPTIONS, type LiveMigrationTimings } from '../domain/live-migration.ts';
import { triggerRequester, type Requester } from '../domain/requester.ts';
import { migrationSummary } from '../domain/workflow-summaries.ts';
import {
  coldMigrationWorkflowId,
  guestRunWorkflowId,
  liveMigrationWorkflowId,
} from '../domain/workflow-ids.ts';
import { WORKFLOW_IDS_WITH_NAMES } from './workflow-patches.ts';
import { coldMigrate } from './cold-migrate.ts';
import { failureReason } from './failure-reason.ts';
import { liveMigrate } from './live-migrate.ts';
import {
  GuestIdKey,
  GuestNameKey,
  MigrationKindKey,
  MigrationTriggerKey,
  SourceHostKey,
} from './search-attributes.ts';

const { recordHostMigration, setMigrationPhase } = proxyActivities<Activities>({
  startToCloseTimeout: '30 seconds',
  retry: { initialInterval: '1 second', maximumInterval: '10 seconds' },
});

export interface HostMigrationRequest {
  /** The host-level run's workflow id: a retry of its recording finds the same row. */
  runKey: string;
  hostId: string;
  hostName: string;
  guestId: string;
  guestName: string;
  trigger: 'host-down' | 'maintenance';
  move: { kind: 'live' } | { kind: 'cold' | 'rescue'; options: ColdMigrateOptions };
  timings: LiveMigrationTimings;
  /** Who asked (the caller who put the host in maintenance); absent: the trigger, `<trigger>:<host>`. */
  requestedBy?: Requester;
}

export type HostMigrationResult =
  | { outcome: 'completed'; migrationId: string; destination: string }
  | { outcome: 'failed'; migrationId: string; error: string }
  | { outcome: 'refused'; migrationId: null; error: string };

/**
 * One guest's move started by a host-level run (a rescue, an evacuation): its row first, then its own child
 * workflow, which finishes by itself whatever happens to the parent (ParentClosePolicy.ABANDON). Resolves once the
 * child has started (so a caller starting several in order asks for their slots in that order); `result` settles
 * when the move ends.
 */
export async function startHostMigration(
  request: HostMigrationRequest,
): Promise<{ result: Promise<HostMigrationResult> }> {
  const { move, guestId } = request;
  const guest = { id: guestId, name: request.guestName };
  const runKind = move.kind === 'live' ? 'live-migrate' : 'cold-migrate';
  // Children started before names joined the ids keep the bare-id form on replay.
  const workflowId = patched(WORKFLOW_IDS_WITH_NAMES)
    ? guestRunWorkflowId(runKind, guest)
    : move.kind === 'live'
      ? liveMigrationWorkflowId(guestId)
      : coldMigrationWorkflowId(guestId);
  const recorded = await recordHostMigration({
    workflowId,
    runKey: request.runKey,
    hostId: request.hostId,
    guestId,
    guestName: request.guestName,
    kind: move.kind,
    trigger: request.trigger,
    options: move.kind === 'live' ? {} : { ...move.options },
    requestedBy: request.requestedBy ?? triggerRequester(request.trigger, request.hostName),
  });
  if ('refused' in recorded) {
    return { result: Promise.resolve({ outcome: 'refused', migrationId: null, error: recorded.refused }) };
  }
  const { migrationId } = recorded;
  const common = {
    workflowId,
    parentClosePolicy: ParentClosePolicy.ABANDON,
    staticSummary: migrationSummary({
      guest: request.guestName,
      source: request.hostName,
      kind: move.kind,
      trigger: request.trigger,
    }),
    typedSearchAttributes: [
      { key: GuestIdKey, value: guestId },
      { key: GuestNameKey, value: request.guestName },
      { key: SourceHostKey, value: request.hostName },
      { key: MigrationKindKey, value: move.kind },
      { key: MigrationTriggerKey, value: request.trigger },
    ],
  };
  const caller = { role: 'admin' as const };
  const failed = async (err: unknown): Promise<HostMigrationResult> => {
    const error = failureReason(err);
    if (/already (started|running)/i.test(error)) {
      // The child never ran, so nobody else will close its row.
      await setMigrationPhase({ migrationId, phase: 'failed', error });
    }
    return { outcome: 'failed', migrationId, error };
  };
  try {
    const child =
      move.kind === 'live'
        ? await startChild(liveMigrate, {
            ...common,
            args: [
              {
                migrationId,
                guestId,
                options: DEFAULT_LIVE_MIGRATE_OPTIONS,
                caller,
                timings: request.timings,
              },
            ],
          })
        : await startChild(coldMigrate, {
            ...common,
            args: [{ migrationId, guestId, options: move.options, caller, timings: request.timings }],
          });
    const ended: Promise<{ destination: string }> = child.result();
    return {
      result: ended.then(
        ({ destination }): HostMigrationResult => ({ outcome: 'completed', migrationId, destination }),
        failed,
      ),
    };
  } catch (err) {
    return { result: failed(err) };
  }
}
