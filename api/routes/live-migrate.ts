import { createRoute } from '@hono/zod-openapi';
import { listMigrations } from '../../db/migration-store.ts';
import { DEFAULT_TIMINGS, type LiveMigrateOptions } from '../../domain/live-migration.ts';
import { guestRunWorkflowId } from '../../domain/workflow-ids.ts';
import { callerOf, ruleCaller } from '../caller.ts';
import type { ApiDeps } from '../deps.ts';
import { jsonBody, parseOr400 } from '../errors.ts';
import { startLiveMigrationGroup } from '../live-migrate-group.ts';
import { migrationGroupPath, migrationGroupView, migrationPath } from '../migration-views.ts';
import {
  addRoute,
  AUTH_ERRORS,
  createdResponse,
  errorResponses,
  idParam,
  jsonBody as bodyOf,
  routeGroup,
} from '../openapi.ts';
import { migrationDetailSchema, migrationGroupSchema } from '../response-schemas.ts';
import { liveMigrateSchema } from '../schemas.ts';
import { answerGuestMigration, migrationTarget } from '../start-migration.ts';

const liveMigrate = createRoute({
  method: 'post',
  path: '/{id}/live-migrate',
  tags: ['migrations'],
  summary: 'Live-migrate a running server (climc server-live-migrate)',
  description:
    'Answers once the pre-checks have spoken: 202 with the migration (Location: /v1/migrations/{id}), or with ' +
    '`with_same_labels` the group of migrations (Location: /v1/migrations/groups/{groupId}); 422 with the ' +
    'failed pre-checks; 409 naming a migration already running.',
  request: { params: idParam('server id or name'), body: bodyOf(liveMigrateSchema) },
  responses: {
    202: createdResponse(
      migrationDetailSchema.or(migrationGroupSchema),
      'the migration, or with `with_same_labels` its group',
    ),
    ...errorResponses(400, 404, 409, 422, 503, ...AUTH_ERRORS),
  },
});

export function liveMigrateRoutes(deps: ApiDeps) {
  const { db } = deps;
  const timings = deps.liveMigrationTimings ?? DEFAULT_TIMINGS;
  const app = routeGroup();

  addRoute(app, liveMigrate, async (c) => {
    const id = c.req.param('id') ?? '';
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
    if (body.with_same_labels) {
      const { groupId } = await startLiveMigrationGroup(deps, caller, guest, options, timings);
      c.header('Location', migrationGroupPath(groupId));
      return c.json(await migrationGroupView(db, groupId, await listMigrations(db, { groupId })), 202);
    }
    const migration = await answerGuestMigration(deps, target, {
      workflowType: 'liveMigrate',
      kind: 'live',
      workflowId: guestRunWorkflowId('live-migrate', guest),
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
    c.header('Location', migrationPath(migration.id));
    return c.json(migration, 202);
  });
  return app;
}
