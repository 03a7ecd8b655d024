import { Hono } from 'hono';
import {
  type Client,
  WorkflowExecutionAlreadyStartedError,
  WorkflowIdConflictPolicy,
  WorkflowIdReusePolicy,
} from '@temporalio/client';
import { findGuest, findHost } from '../../db/inventory.ts';
import { deleteMigration, findMigration } from '../../db/migration-store.ts';
import { DEFAULT_TIMINGS, type LiveMigrateOptions } from '../../domain/live-migration.ts';
import { liveMigrationWorkflowId } from '../../domain/workflow-ids.ts';
import type { LiveMigrateInput, liveMigrate } from '../../workflows/live-migrate.ts';
import { precheckUpdate, type PrecheckAnswer } from '../../workflows/live-migrate-messages.ts';
import {
  GuestIdKey,
  MigrationKindKey,
  MigrationTriggerKey,
  SourceHostKey,
} from '../../workflows/search-attributes.ts';
import type { ApiDeps } from '../deps.ts';
import { ApiError, jsonBody, notFound, parseOr400 } from '../errors.ts';
import { alreadyRunning } from '../already-running.ts';
import { underGuestMigrationLock } from '../guest-migration-lock.ts';
import { startLiveMigrationGroup } from '../live-migrate-group.ts';
import { liveMigrateSchema } from '../schemas.ts';
import { recordPendingMigration } from '../pending-migration.ts';
import { startOnceThePreviousRunCloses } from '../workflow-runs.ts';

export function liveMigrateRoutes(deps: ApiDeps) {
  const { db, temporal, taskQueue } = deps;
  const timings = deps.liveMigrationTimings ?? DEFAULT_TIMINGS;

  return new Hono().post('/:id/live-migrate', async (c) => {
    const id = c.req.param('id');
    const body = parseOr400(liveMigrateSchema, await jsonBody(c));
    const guest = await findGuest(db, id);
    if (!guest) throw notFound('server', id);
    if (body.prefer_host !== undefined && !(await findHost(db, body.prefer_host))) {
      throw new ApiError(
        400,
        'invalid_request',
        `prefer_host: no host with id or name '${body.prefer_host}'`,
        'prefer_host',
      );
    }
    const options: LiveMigrateOptions = {
      preferHost: body.prefer_host ?? null,
      skipCpuCheck: body.skip_cpu_check,
      skipKernelCheck: body.skip_kernel_check,
      enableTls: body.enable_tls,
      quicklyFinish: body.quickly_finish,
      maxBandwidthMb: body.max_bandwidth_mb,
      keepDestGuestOnFailed: body.keep_dest_guest_on_failed,
    };
    if (body.with_same_labels)
      return c.json(await startLiveMigrationGroup(deps, guest, options, timings), 202);
    const source = await findHost(db, guest.hostId);
    const workflowId = liveMigrationWorkflowId(guest.id);
    // Under the guest's lock: a request that recorded its migration and is starting the run right now is
    // never mistaken for one that stopped in between.
    const { migration, handle } = await underGuestMigrationLock(db, [guest], async (locked) => {
      const row = await recordPendingMigration(locked, temporal, guest, {
        kind: 'live',
        sourceHostId: guest.hostId,
        trigger: 'manual',
        options: { ...options },
        workflowId,
      });
      const input: LiveMigrateInput = {
        migrationId: row.id,
        guestId: guest.id,
        options,
        caller: { role: 'admin' },
        timings,
      };
      try {
        const started = await startOnceThePreviousRunCloses(() =>
          temporal.workflow.start<typeof liveMigrate>('liveMigrate', {
            taskQueue,
            workflowId,
            args: [input],
            workflowIdConflictPolicy: WorkflowIdConflictPolicy.FAIL,
            workflowIdReusePolicy: WorkflowIdReusePolicy.ALLOW_DUPLICATE,
            typedSearchAttributes: [
              { key: GuestIdKey, value: guest.id },
              { key: SourceHostKey, value: source?.name ?? guest.hostId },
              { key: MigrationKindKey, value: 'live' },
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

    const answer = await awaitPrechecks(
      temporal,
      () => handle.executeUpdate(precheckUpdate),
      timings.precheckAnswerTimeoutMs,
    );
    if (answer === 'workflow-ended' || (answer !== null && !answer.ok)) {
      const row = await findMigration(db, migration.id);
      const ended = row?.phase === 'failed' || row?.phase === 'cancelled';
      if (answer !== 'workflow-ended' || ended) {
        const failures =
          answer === 'workflow-ended'
            ? (row?.checks ?? []).filter((check) => check.ok === false)
            : answer.failures;
        const reason = answer === 'workflow-ended' ? undefined : answer.reason;
        throw new ApiError(422, 'precheck_failed', row?.error ?? reason ?? 'pre-checks failed', undefined, {
          migrationId: migration.id,
          failures,
        });
      }
    }
    const verdict = answer !== null && answer !== 'workflow-ended' && answer.ok ? answer : null;
    return c.json(
      {
        migrationId: migration.id,
        workflowId,
        runId: handle.firstExecutionRunId,
        destination: verdict?.destination ?? null,
        phase: verdict ? 'preparing' : 'prechecks',
      },
      202,
    );
  });
}

/** The pre-check verdict, 'workflow-ended' if the run finished before it could answer, or null on timeout. */
async function awaitPrechecks(
  temporal: Client,
  ask: () => Promise<PrecheckAnswer>,
  timeoutMs: number,
): Promise<PrecheckAnswer | 'workflow-ended' | null> {
  try {
    return await temporal.connection.withDeadline(Date.now() + timeoutMs, ask);
  } catch (err) {
    return isDeadlineExceeded(err) ? null : 'workflow-ended';
  }
}

/** gRPC status code DEADLINE_EXCEEDED. */
const GRPC_DEADLINE_EXCEEDED = 4;

function isDeadlineExceeded(err: unknown): boolean {
  for (let e: unknown = err; e instanceof Error; e = e.cause) {
    if ((e as { code?: unknown }).code === GRPC_DEADLINE_EXCEEDED) return true;
  }
  return false;
}
