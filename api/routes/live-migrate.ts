import { Hono } from 'hono';
import { findGuest, findHost } from '../../db/inventory.ts';
import { DEFAULT_TIMINGS, type LiveMigrateOptions } from '../../domain/live-migration.ts';
import { liveMigrationWorkflowId } from '../../domain/workflow-ids.ts';
import { precheckUpdate } from '../../workflows/live-migrate-messages.ts';
import type { ApiDeps } from '../deps.ts';
import { ApiError, jsonBody, notFound, parseOr400 } from '../errors.ts';
import { startLiveMigrationGroup } from '../live-migrate-group.ts';
import { liveMigrateSchema } from '../schemas.ts';
import { precheckVerdict } from '../await-prechecks.ts';
import { startGuestMigration } from '../start-migration.ts';

export function liveMigrateRoutes(deps: ApiDeps) {
  const { db } = deps;
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
    const { migration, handle } = await startGuestMigration(deps, guest, source?.name ?? guest.hostId, {
      workflowType: 'liveMigrate',
      kind: 'live',
      workflowId,
      options: { ...options },
      input: (migrationId) => ({
        migrationId,
        guestId: guest.id,
        options,
        caller: { role: 'admin' },
        timings,
      }),
    });

    const verdict = await precheckVerdict(deps, migration.id, () => handle.executeUpdate(precheckUpdate));
    return c.json(
      {
        migrationId: migration.id,
        workflowId,
        runId: handle.firstExecutionRunId,
        ...verdict,
      },
      202,
    );
  });
}
