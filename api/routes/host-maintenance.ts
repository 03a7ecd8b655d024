import { Hono } from 'hono';
import { WorkflowIdConflictPolicy, WorkflowIdReusePolicy, WorkflowNotFoundError } from '@temporalio/client';
import { findHost, recordEvent } from '../../db/inventory.ts';
import { setHostMaintenance } from '../../db/host-store.ts';
import { DEFAULT_TIMINGS } from '../../domain/live-migration.ts';
import { evacuateHostWorkflowId } from '../../domain/workflow-ids.ts';
import type { EvacuateHostInput } from '../../workflows/evacuate-host.ts';
import { callerOf } from '../caller.ts';
import type { ApiDeps } from '../deps.ts';
import { ApiError, notFound } from '../errors.ts';
import { hostView } from '../views.ts';

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

  return new Hono()
    .post('/:id/maintenance', async (c) => {
      const host = await hostOr404(c.req.param('id'));
      const updated = await setHostMaintenance(db, host.id, true);
      const workflowId = evacuateHostWorkflowId(host.id);
      const { requester } = callerOf(c);
      const input: EvacuateHostInput = { hostId: host.id, migrationTimings: timings, requestedBy: requester };
      let runId: string;
      try {
        const handle = await temporal.workflow.start('evacuateHost', {
          taskQueue,
          workflowId,
          args: [input],
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
      return c.json(
        { host: hostView(updated ?? host, await liveness.onlineHostIds()), workflowId, runId },
        202,
      );
    })
    .delete('/:id/maintenance', async (c) => {
      const host = await hostOr404(c.req.param('id'));
      try {
        const handle = temporal.workflow.getHandle(evacuateHostWorkflowId(host.id));
        if ((await handle.describe()).status.name === 'RUNNING') await handle.cancel();
      } catch (err) {
        if (!(err instanceof WorkflowNotFoundError)) {
          throw new ApiError(503, 'unavailable', `could not stop the evacuation: ${(err as Error).message}`);
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
      return c.json(hostView(updated ?? host, await liveness.onlineHostIds()));
    });
}
