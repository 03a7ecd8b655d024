import { createRoute } from '@hono/zod-openapi';
import { probeSourceReach } from '../../activities/source-reach.ts';
import type { Guest, Host } from '../../db/schema.ts';
import { disksSurviveTheSource, sourceIsDown, type ColdMigrateOptions } from '../../domain/cold-migration.ts';
import { DEFAULT_TIMINGS } from '../../domain/live-migration.ts';
import { guestRunWorkflowId } from '../../domain/workflow-ids.ts';
import { callerOf, ruleCaller } from '../caller.ts';
import type { ApiDeps } from '../deps.ts';
import { ApiError, jsonBody, parseOr400 } from '../errors.ts';
import { migrationPath } from '../migration-views.ts';
import {
  addRoute,
  AUTH_ERRORS,
  createdResponse,
  errorResponses,
  idParam,
  jsonBody as bodyOf,
  routeGroup,
} from '../openapi.ts';
import { migrationDetailSchema } from '../response-schemas.ts';
import { coldMigrateSchema } from '../schemas.ts';
import { answerGuestMigration, migrationTarget } from '../start-migration.ts';

const coldMigrate = createRoute({
  method: 'post',
  path: '/{id}/migrate',
  tags: ['migrations'],
  summary:
    'Migrate a stopped server cold, or with rescue_mode one whose host is down (Cloudpods server-migrate)',
  request: { params: idParam('server id or name'), body: bodyOf(coldMigrateSchema) },
  responses: {
    202: createdResponse(migrationDetailSchema, 'the migration (kind cold or rescue)'),
    ...errorResponses(400, 404, 409, 422, 503, ...AUTH_ERRORS),
  },
});

/**
 * `POST /v1/servers/:id/migrate` (Cloudpods' server-migrate): a stopped guest moves cold, or with rescue_mode
 * a guest of a host that is down restarts elsewhere. Answers once the workflow's pre-checks have spoken.
 */
export function coldMigrateRoutes(deps: ApiDeps) {
  const { db } = deps;
  const timings = deps.liveMigrationTimings ?? DEFAULT_TIMINGS;

  const app = routeGroup();
  addRoute(app, coldMigrate, async (c) => {
    const id = c.req.param('id') ?? '';
    const body = parseOr400(coldMigrateSchema, await jsonBody(c));
    const caller = callerOf(c);
    const target = await migrationTarget(db, caller, id, body.prefer_host);
    const { guest, source } = target;
    const options: ColdMigrateOptions = {
      preferHost: body.prefer_host ?? null,
      autoStart: body.auto_start,
      rescueMode: body.rescue_mode,
    };
    if (options.rescueMode) await refuseImpossibleRescue(deps, guest, source);
    const kind = options.rescueMode ? 'rescue' : 'cold';
    const migration = await answerGuestMigration(deps, target, {
      workflowType: 'coldMigrate',
      kind,
      workflowId: guestRunWorkflowId('cold-migrate', guest),
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

/**
 * A rescue that cannot be is a 400 naming the disk or the reason before anything is recorded; the workflow checks
 * again when it runs (the host may come back meanwhile).
 */
async function refuseImpossibleRescue(deps: ApiDeps, guest: Guest, source: Host | undefined): Promise<void> {
  const disks = disksSurviveTheSource(guest, true);
  if (!disks.ok) throw new ApiError(400, 'invalid_request', `rescue_mode: ${disks.message}`, 'rescue_mode');
  const online = source ? await deps.liveness.isOnline(source.id) : false;
  const reach = source
    ? await probeSourceReach(source.agentUrl, deps.agentCredentials, guest.id)
    : { agentAnswers: false, guestLiveThere: false };
  const down = sourceIsDown(source ? { name: source.name, online } : undefined, reach);
  if (!down.ok) throw new ApiError(400, 'invalid_request', `rescue_mode: ${down.message}`, 'rescue_mode');
}
