import { createRoute } from '@hono/zod-openapi';
import { WorkflowIdConflictPolicy, WorkflowIdReusePolicy, WorkflowNotFoundError } from '@temporalio/client';
import { findHost, recordEvent } from '../../db/inventory.ts';
import { setHostMaintenance } from '../../db/host-store.ts';
import { DEFAULT_TIMINGS } from '../../domain/live-migration.ts';
import { evacuateHostWorkflowId, evacuationWorkflowId } from '../../domain/workflow-ids.ts';
import { evacuationSummary } from '../../domain/workflow-summaries.ts';
import { SourceHostKey } from '../../workflows/search-attributes.ts';
import type { EvacuateHostInput } from '../../workflows/evacuate-host.ts';
import { callerOf } from '../caller.ts';
import type { ApiDeps } from '../deps.ts';
import { ApiError, notFound } from '../errors.ts';
import {
  addRoute,
  AUTH_ERRORS,
  createdResponse,
  errorResponses,
  idParam,
  jsonResponse,
  routeGroup,
} from '../openapi.ts';
import { hostSchema } from '../response-schemas.ts';
import { hostView } from '../views.ts';

const tags = ['hosts'];

const enterMaintenance = createRoute({
  method: 'post',
  path: '/{id}/maintenance',
  tags,
  summary: 'Take the host out of scheduling and evacuate it (evacuate-host-<host id>)',
  request: { params: idParam('host id or name') },
  responses: {
    202: createdResponse(hostSchema, 'the host, in maintenance; its evacuation runs'),
    ...errorResponses(404, 503, ...AUTH_ERRORS),
  },
});

const exitMaintenance = createRoute({
  method: 'delete',
  path: '/{id}/maintenance',
  tags,
  summary: 'Cancel an evacuation still running and return the host to scheduling',
  request: { params: idParam('host id or name') },
  responses: { 200: jsonResponse(hostSchema, 'the host'), ...errorResponses(404, 503, ...AUTH_ERRORS) },
});

/**
 * `POST /v1/hosts/:id/maintenance` takes the host out of scheduling at once (no placement targets a host in
 * maintenance, so two hosts evacuating together never target each other) and starts its `evacuateHost`; a
 * second call joins the running evacuation. `DELETE` cancels an evacuation still running (each move in flight is
 * cancelled: it rolls back, or forward when past its switch-over) and returns the host to scheduling.
 */
export function hostMaintenanceRoutes(deps: ApiDeps) {
  const { db, temporal, taskQueue, liveness } = deps;
  const timings = deps.liveMigrationTimings ?? DEFAULT_TIMINGS;
  const hostOr404 = async (id: string) => {
    const host = await findHost(db, id);
    if (!host) throw notFound('host', id);
    return host;
  };

  const app = routeGroup();
  addRoute(app, enterMaintenance, async (c) => {
    const host = await hostOr404(c.req.param('id') ?? '');
    const updated = await setHostMaintenance(db, host.id, true);
    const workflowId = evacuationWorkflowId(host);
    const { requester } = callerOf(c);
    const input: EvacuateHostInput = { hostId: host.id, migrationTimings: timings, requestedBy: requester };
    let runId: string;
    try {
      const handle = await temporal.workflow.start('evacuateHost', {
        taskQueue,
        workflowId,
        args: [input],
        staticSummary: evacuationSummary(host.name),
        typedSearchAttributes: [{ key: SourceHostKey, value: host.name }],
        workflowIdConflictPolicy: WorkflowIdConflictPolicy.USE_EXISTING,
        workflowIdReusePolicy: WorkflowIdReusePolicy.ALLOW_DUPLICATE,
      });
      runId = handle.firstExecutionRunId;
    } catch (err) {
      // Still out of scheduling, which is what maintenance asks first; a retry starts the evacuation.
      throw new ApiError(503, 'unavailable', `could not start the evacuation: ${(err as Error).message}`);
    }
    if (host.status !== 'maintenance') {
      await recordEvent(db, {
        subjectKind: 'host',
        subjectId: host.id,
        type: 'maintenance_enter',
        message: `host ${host.name} entered maintenance: out of scheduling, evacuating (${workflowId})`,
        data: { workflowId, runId },
        requestedBy: requester,
      });
    }
    c.header('Location', `/v1/hosts/${host.id}`);
    return c.json(hostView(updated ?? host, await liveness.isOnline((updated ?? host).id)), 202);
  });
  addRoute(app, exitMaintenance, async (c) => {
    const host = await hostOr404(c.req.param('id') ?? '');
    // An evacuation begun before ids carried the host's name runs under the bare-id form.
    for (const workflowId of [evacuationWorkflowId(host), evacuateHostWorkflowId(host.id)]) {
      try {
        const handle = temporal.workflow.getHandle(workflowId);
        if ((await handle.describe()).status.name === 'RUNNING') await handle.cancel();
      } catch (err) {
        if (!(err instanceof WorkflowNotFoundError)) {
          throw new ApiError(503, 'unavailable', `could not stop the evacuation: ${(err as Error).message}`);
        }
      }
    }
    const updated = await setHostMaintenance(db, host.id, false);
    if (host.status === 'maintenance') {
      await recordEvent(db, {
        subjectKind: 'host',
        subjectId: host.id,
        type: 'maintenance_exit',
        message: `host ${host.name} left maintenance: back in scheduling`,
        requestedBy: callerOf(c).requester,
      });
    }
    return c.json(hostView(updated ?? host, await liveness.isOnline((updated ?? host).id)));
  });
  return app;
}
