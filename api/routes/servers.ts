import { Hono } from 'hono';
import { WorkflowIdConflictPolicy } from '@temporalio/client';
import { eq } from 'drizzle-orm';
import { findGuest, findHost, insertGuest, listGuests, listHosts } from '../../db/inventory.ts';
import { guests } from '../../db/schema.ts';
import { createGuestWorkflowId } from '../../domain/workflow-ids.ts';
import type { createGuest } from '../../workflows/create-guest.ts';
import { GuestIdKey } from '../../workflows/search-attributes.ts';
import { visibleProjects } from '../../domain/project-scope.ts';
import { callerOf, requireProjectScope } from '../caller.ts';
import type { ApiDeps } from '../deps.ts';
import { ApiError, jsonBody, notFound, parseOr400 } from '../errors.ts';
import { liveGuestOn, liveGuestsByHost } from '../live-guests.ts';
import { createServerSchema, serverListQuerySchema } from '../schemas.ts';
import { serverView } from '../views.ts';

/** A token limited to projects lists their servers only, and reads or creates nothing else (403 naming the project). */
export function serverRoutes({ db, temporal, taskQueue, liveness, agentCredentials }: ApiDeps) {
  return new Hono()
    .get('/', async (c) => {
      const query = parseOr400(serverListQuerySchema, c.req.query());
      const projects = visibleProjects(callerOf(c));
      let hostId: string | undefined;
      if (query.host !== undefined) {
        const host = await findHost(db, query.host);
        if (!host) throw notFound('host', query.host);
        hostId = host.id;
      }
      const [rows, hosts] = await Promise.all([
        listGuests(db, { hostId, status: query.status, projects }),
        listHosts(db),
      ]);
      const hostsById = new Map(hosts.map((h) => [h.id, h]));
      const involved = hosts.filter((h) => rows.some((g) => g.hostId === h.id));
      const live = await liveGuestsByHost(involved, agentCredentials);
      return c.json({
        servers: rows.map((g) => serverView(g, hostsById.get(g.hostId), liveGuestOn(live, g.hostId, g.id))),
      });
    })
    .get('/:id', async (c) => {
      const id = c.req.param('id');
      const guest = await findGuest(db, id);
      if (!guest) throw notFound('server', id);
      requireProjectScope(callerOf(c), `server '${guest.name}'`, guest.project);
      const host = await findHost(db, guest.hostId);
      const live = await liveGuestsByHost(host ? [host] : [], agentCredentials);
      return c.json(serverView(guest, host, liveGuestOn(live, guest.hostId, guest.id)));
    })
    .post('/', async (c) => {
      const body = parseOr400(createServerSchema, await jsonBody(c));
      requireProjectScope(callerOf(c), `server '${body.name}'`, body.project);
      const host = await findHost(db, body.host);
      if (!host)
        throw new ApiError(400, 'invalid_request', `host: no host with id or name '${body.host}'`, 'host');
      if (!host.enabled) throw new ApiError(409, 'host_disabled', `host '${host.name}' is disabled`, 'host');
      if (!(await liveness.onlineHostIds()).has(host.id)) {
        throw new ApiError(
          409,
          'host_offline',
          `host '${host.name}' is offline (no live etcd lease)`,
          'host',
        );
      }
      if (await findGuest(db, body.name)) {
        throw new ApiError(409, 'conflict', `a server named '${body.name}' already exists`, 'name');
      }
      const { host: _host, ...fields } = body;
      const guest = await insertGuest(db, { ...fields, hostId: host.id, status: 'creating' });
      const workflowId = createGuestWorkflowId(guest.id);
      try {
        await temporal.workflow.start<typeof createGuest>('createGuest', {
          taskQueue,
          workflowId,
          workflowIdConflictPolicy: WorkflowIdConflictPolicy.USE_EXISTING,
          args: [{ guestId: guest.id, requestedBy: callerOf(c).requester }],
          typedSearchAttributes: [{ key: GuestIdKey, value: guest.id }],
        });
      } catch (err) {
        // Nothing was asked of any host yet: removing the row leaves no half-created server behind.
        await db.delete(guests).where(eq(guests.id, guest.id));
        throw new ApiError(
          503,
          'unavailable',
          `could not start the create workflow: ${(err as Error).message}`,
        );
      }
      return c.json({ server: serverView(guest, host, undefined), workflowId }, 202);
    });
}
