import { createRoute } from '@hono/zod-openapi';
import { z } from 'zod';
import { removeHost } from '../../db/host-removal-store.ts';
import { findHost } from '../../db/inventory.ts';
import { describeHostRemovalBlockers } from '../../domain/host-removal.ts';
import { callerOf } from '../caller.ts';
import type { ApiDeps } from '../deps.ts';
import { ApiError, notFound } from '../errors.ts';
import { addRoute, AUTH_ERRORS, errorResponses, idParam, jsonResponse, routeGroup } from '../openapi.ts';

const removedHostSchema = z.object({
  removed: z.object({ id: z.string(), name: z.string() }),
  eventsRemoved: z.number().int().describe('how many of its events went with it'),
});

const deleteHost = createRoute({
  method: 'delete',
  path: '/{id}',
  tags: ['hosts'],
  summary: 'Remove a host (admin): its name is free again, so a reinstalled hypervisor can enrol under it',
  description:
    '409 while it is online, guests are assigned to it, a migration involving it is active, or an alert rule ' +
    'names it: `blockers` lists each. Its events and credential go with it; its finished migrations stay and ' +
    'keep its name.',
  request: { params: idParam('host id or name') },
  responses: {
    200: jsonResponse(removedHostSchema, 'the removed host'),
    ...errorResponses(404, 409, ...AUTH_ERRORS),
  },
});

/**
 * `DELETE /v1/hosts/:id`: the rules are domain/host-removal.ts, the removal db/host-removal-store.ts. An online
 * host is refused rather than its etcd key deleted: its agent would put the key back and register again, and the
 * workers would read the deletion as the host going down.
 */
export function hostRemovalRoutes({ db, liveness, agentCredentials }: ApiDeps) {
  const app = routeGroup();
  addRoute(app, deleteHost, async (c) => {
    const id = c.req.param('id') ?? '';
    const host = await findHost(db, id);
    if (!host) throw notFound('host', id);
    const online = await liveness.isOnline(host.id);
    const outcome = await removeHost(db, host.id, online, callerOf(c).requester);
    if (!outcome) throw notFound('host', id);
    if (!outcome.removed) {
      throw new ApiError(
        409,
        'conflict',
        describeHostRemovalBlockers(host.name, outcome.blockers),
        undefined,
        {
          blockers: outcome.blockers,
        },
      );
    }
    agentCredentials.forget?.(host.agentUrl);
    return c.json({ removed: { id: host.id, name: host.name }, eventsRemoved: outcome.eventsRemoved });
  });
  return app;
}
