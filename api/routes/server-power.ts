import { createRoute } from '@hono/zod-openapi';
import type { Context } from 'hono';
import { WorkflowExecutionAlreadyStartedError, WorkflowIdConflictPolicy } from '@temporalio/client';
import { findGuest, findHost } from '../../db/inventory.ts';
import type { Guest } from '../../db/schema.ts';
import { activeMigrationOfGuest } from '../../db/migration-store.ts';
import { powerVerdict, type PowerAction } from '../../domain/guest-power.ts';
import { guestRunWorkflowId } from '../../domain/workflow-ids.ts';
import { guestActionSummary } from '../../domain/workflow-summaries.ts';
import type { guestPower } from '../../workflows/guest-power.ts';
import { GuestIdKey, GuestNameKey } from '../../workflows/search-attributes.ts';
import { callerOf, requireProjectScope } from '../caller.ts';
import type { ApiDeps } from '../deps.ts';
import { ApiError, notFound } from '../errors.ts';
import { underGuestMigrationLock } from '../guest-migration-lock.ts';
import {
  addRoute,
  AUTH_ERRORS,
  createdResponse,
  errorResponses,
  idParam,
  routeGroup,
  type RouteConfig,
} from '../openapi.ts';
import { serverSchema } from '../response-schemas.ts';
import { serverView } from '../views.ts';
import { serverPath } from './servers.ts';

const powerRoute = (action: PowerAction): RouteConfig =>
  createRoute({
    method: 'post',
    path: `/{id}/${action}`,
    tags: ['servers'],
    summary: action === 'stop' ? 'Stop a server (it becomes ready)' : 'Start a stopped server',
    description: `Cloudpods' server-${action}, as a durable workflow (guest-power-<server id>).`,
    request: { params: idParam('server id or name') },
    responses: {
      202: createdResponse(serverSchema, `the server; the ${action} runs`),
      200: createdResponse(serverSchema, `the server, already ${action === 'stop' ? 'stopped' : 'running'}`),
      ...errorResponses(404, 409, 503, ...AUTH_ERRORS),
    },
  });

/**
 * POST /v1/servers/:id/stop and /start (Cloudpods' server-stop, server-start): a durable workflow does it;
 * the answer is 202 with the server (200 when it already is so), or 409 when a migration or another stop/start of
 * the server is in flight.
 */
export function serverPowerRoutes({ db, temporal, taskQueue }: ApiDeps) {
  const answer = async (c: Context, guest: Guest, status: 200 | 202) => {
    const now = (await findGuest(db, guest.id)) ?? guest;
    c.header('Location', serverPath(guest.id));
    return c.json(serverView(now, await findHost(db, now.hostId), undefined), status);
  };
  const power = (action: PowerAction) => async (c: Context) => {
    const id = c.req.param('id') ?? '';
    const guest = await findGuest(db, id);
    if (!guest) throw notFound('server', id);
    requireProjectScope(callerOf(c), `server '${guest.name}'`, guest.project);
    // A migration in flight is the reason to name (the guest's status says only `migrating`).
    refuseDuringMigration(guest.name, await activeMigrationOfGuest(db, guest.id));
    const verdict = powerVerdict(action, guest.status);
    if (!verdict.ok)
      throw new ApiError(409, 'invalid_status', `cannot ${action} server '${guest.name}': ${verdict.reason}`);
    if (verdict.already) return answer(c, guest, 200);
    const workflowId = guestRunWorkflowId('guest-power', guest);
    // Under the guest's migration lock, so no migration starts between the check and the workflow's start.
    await underGuestMigrationLock(db, [guest], async (locked) => {
      refuseDuringMigration(guest.name, await activeMigrationOfGuest(locked, guest.id));
      try {
        await temporal.workflow.start<typeof guestPower>('guestPower', {
          taskQueue,
          workflowId,
          workflowIdConflictPolicy: WorkflowIdConflictPolicy.FAIL,
          args: [{ guestId: guest.id, action, requestedBy: callerOf(c).requester }],
          staticSummary: guestActionSummary(
            guest.name,
            action,
            (await findHost(db, guest.hostId))?.name ?? guest.hostId,
          ),
          typedSearchAttributes: [
            { key: GuestIdKey, value: guest.id },
            { key: GuestNameKey, value: guest.name },
          ],
        });
      } catch (err) {
        if (err instanceof WorkflowExecutionAlreadyStartedError) {
          throw new ApiError(
            409,
            'power_in_progress',
            `a stop or start of server '${guest.name}' is in flight`,
          );
        }
        throw new ApiError(
          503,
          'unavailable',
          `could not start the ${action} workflow: ${(err as Error).message}`,
        );
      }
    });
    return answer(c, guest, 202);
  };
  const app = routeGroup();
  for (const action of ['stop', 'start'] as const) addRoute(app, powerRoute(action), power(action));
  return app;
}

function refuseDuringMigration(name: string, active: { id: string; phase: string } | undefined | null): void {
  if (!active) return;
  throw new ApiError(
    409,
    'migration_in_progress',
    `server '${name}' has migration ${active.id} in flight (${active.phase})`,
    undefined,
    {
      migrationId: active.id,
    },
  );
}
