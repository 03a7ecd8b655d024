import { Hono } from 'hono';
import { DEFAULT_TIMINGS, type LiveMigrateOptions } from '../../domain/live-migration.ts';
import { liveMigrationWorkflowId } from '../../domain/workflow-ids.ts';
import { callerOf, ruleCaller } from '../caller.ts';
import type { ApiDeps } from '../deps.ts';
import { jsonBody, parseOr400 } from '../errors.ts';
import { startLiveMigrationGroup } from '../live-migrate-group.ts';
import { liveMigrateSchema } from '../schemas.ts';
import { answerGuestMigration, migrationTarget } from '../start-migration.ts';

export function liveMigrateRoutes(deps: ApiDeps) {
  const { db } = deps;
  const timings = deps.liveMigrationTimings ?? DEFAULT_TIMINGS;

  return new Hono().post('/:id/live-migrate', async (c) => {
    const id = c.req.param('id');
    const body = parseOr400(liveMigrateSchema, await jsonBody(c));
    const caller = callerOf(c);
    const target = await migrationTarget(db, caller, id, body.prefer_host);
    const { guest } = target;
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
      return c.json(await startLiveMigrationGroup(deps, caller, guest, options, timings), 202);
    const answer = await answerGuestMigration(deps, target, {
      workflowType: 'liveMigrate',
      kind: 'live',
      workflowId: liveMigrationWorkflowId(guest.id),
      options: { ...options },
      input: (migrationId) => ({
        migrationId,
        guestId: guest.id,
        options,
        caller: ruleCaller(caller),
        timings,
      }),
      caller,
    });
    return c.json(answer, 202);
  });
}
