import { createRoute } from '@hono/zod-openapi';
import { WorkflowIdConflictPolicy } from '@temporalio/client';
import { eq } from 'drizzle-orm';
import type { Db } from '../../db/client.ts';
import { findGuest, findHost, hostsByIds, insertGuest, listGuests } from '../../db/inventory.ts';
import { DEFAULT_PAGE_LIMIT, pageOf as pageOfRows } from '../../domain/paging.ts';
import { cursorKey } from '../paging.ts';
import { guests, type Guest } from '../../db/schema.ts';
import { mergeLabels, type LabelPatch } from '../../domain/guest-labels.ts';
import { guestRunWorkflowId } from '../../domain/workflow-ids.ts';
import { guestActionSummary } from '../../domain/workflow-summaries.ts';
import type { createGuest } from '../../workflows/create-guest.ts';
import { GuestIdKey, GuestNameKey } from '../../workflows/search-attributes.ts';
import { visibleProjects } from '../../domain/project-scope.ts';
import { callerOf, requireProjectScope } from '../caller.ts';
import type { ApiDeps } from '../deps.ts';
import { ApiError, jsonBody, notFound, parseOr400 } from '../errors.ts';
import { liveGuestsOf } from '../live-guests.ts';
import {
  addRoute,
  AUTH_ERRORS,
  createdResponse,
  errorResponses,
  idParam,
  jsonBody as bodyOf,
  jsonResponse,
  routeGroup,
} from '../openapi.ts';
import { pageOf, serverSchema } from '../response-schemas.ts';
import { createServerSchema, serverListQuerySchema, updateServerSchema } from '../schemas.ts';
import { serverView } from '../views.ts';

const tags = ['servers'];
const serverId = idParam('server id or name');

export const serverPath = (id: string) => `/v1/servers/${id}`;

const listServers = createRoute({
  method: 'get',
  path: '/',
  tags,
  summary: 'List servers with live state from their agents',
  request: { query: serverListQuerySchema },
  responses: {
    200: jsonResponse(pageOf(serverSchema), 'a page of the servers, by name'),
    ...errorResponses(400, 404, ...AUTH_ERRORS),
  },
});

const getServer = createRoute({
  method: 'get',
  path: '/{id}',
  tags,
  summary: 'One server with its live state',
  request: { params: serverId },
  responses: { 200: jsonResponse(serverSchema, 'the server'), ...errorResponses(404, ...AUTH_ERRORS) },
});

const createServer = createRoute({
  method: 'post',
  path: '/',
  tags,
  summary: 'Create a guest of the test image on a host and start it (a workflow)',
  request: { body: bodyOf(createServerSchema) },
  responses: {
    202: createdResponse(serverSchema, 'the server, `creating` while its workflow runs'),
    ...errorResponses(400, 409, 503, ...AUTH_ERRORS),
  },
});

const updateServer = createRoute({
  method: 'patch',
  path: '/{id}',
  tags,
  summary: "Set or remove a server's labels: a string sets a key, null removes it, the others stay",
  description: 'Policies and affinity select on the labels from the next migration on.',
  request: { params: serverId, body: bodyOf(updateServerSchema) },
  responses: {
    200: jsonResponse(serverSchema, 'the updated server'),
    ...errorResponses(400, 404, ...AUTH_ERRORS),
  },
});

/** A token limited to projects lists their servers only, and reads or creates nothing else (403 naming the project). */
export function serverRoutes({ db, temporal, taskQueue, liveness }: ApiDeps) {
  const app = routeGroup();
  const withLiveState = async (guest: Guest) => {
    const host = await findHost(db, guest.hostId);
    const live = await liveGuestsOf(db, [guest], new Map(host ? [[host.id, host]] : []));
    return serverView(guest, host, live.get(guest.id));
  };

  addRoute(app, listServers, async (c) => {
    const query = parseOr400(serverListQuerySchema, c.req.query());
    const projects = visibleProjects(callerOf(c));
    let hostId: string | undefined;
    if (query.host !== undefined) {
      const host = await findHost(db, query.host);
      if (!host) throw notFound('host', query.host);
      hostId = host.id;
    }
    const limit = query.limit ?? DEFAULT_PAGE_LIMIT;
    const key = cursorKey('servers', query.cursor);
    const after = key && { name: String(key.sort), id: key.id };
    const rows = await listGuests(db, { hostId, status: query.status, projects, after, limit: limit + 1 });
    const page = pageOfRows('servers', rows, limit, (g) => ({ sort: g.name, id: g.id }));
    // Only the hosts of this page: a page costs the same whatever the fleet's size.
    const hosts = await hostsByIds(db, [...new Set(page.items.map((g) => g.hostId))]);
    const hostsById = new Map(hosts.map((h) => [h.id, h]));
    const live = await liveGuestsOf(db, page.items, hostsById);
    return c.json({
      items: page.items.map((g) => serverView(g, hostsById.get(g.hostId), live.get(g.id))),
      next_cursor: page.next_cursor,
    });
  });

  addRoute(app, getServer, async (c) => {
    const id = c.req.param('id') ?? '';
    const guest = await findGuest(db, id);
    if (!guest) throw notFound('server', id);
    requireProjectScope(callerOf(c), `server '${guest.name}'`, guest.project);
    return c.json(await withLiveState(guest));
  });

  addRoute(app, createServer, async (c) => {
    const body = parseOr400(createServerSchema, await jsonBody(c));
    requireProjectScope(callerOf(c), `server '${body.name}'`, body.project);
    const host = await findHost(db, body.host);
    if (!host)
      throw new ApiError(400, 'invalid_request', `host: no host with id or name '${body.host}'`, 'host');
    if (!host.enabled) throw new ApiError(409, 'host_disabled', `host '${host.name}' is disabled`, 'host');
    if (!(await liveness.isOnline(host.id))) {
      throw new ApiError(409, 'host_offline', `host '${host.name}' is offline (no live etcd lease)`, 'host');
    }
    if (await findGuest(db, body.name)) {
      throw new ApiError(409, 'conflict', `a server named '${body.name}' already exists`, 'name');
    }
    const { host: _host, ...fields } = body;
    const guest = await insertGuest(db, { ...fields, hostId: host.id, status: 'creating' });
    const workflowId = guestRunWorkflowId('guest-create', guest);
    try {
      await temporal.workflow.start<typeof createGuest>('createGuest', {
        taskQueue,
        workflowId,
        workflowIdConflictPolicy: WorkflowIdConflictPolicy.USE_EXISTING,
        args: [{ guestId: guest.id, requestedBy: callerOf(c).requester }],
        staticSummary: guestActionSummary(guest.name, 'create', host.name),
        typedSearchAttributes: [
          { key: GuestIdKey, value: guest.id },
          { key: GuestNameKey, value: guest.name },
        ],
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
    c.header('Location', serverPath(guest.id));
    return c.json(serverView(guest, host, undefined), 202);
  });

  addRoute(app, updateServer, async (c) => {
    const id = c.req.param('id') ?? '';
    const body = parseOr400(updateServerSchema, await jsonBody(c));
    const guest = await findGuest(db, id);
    if (!guest) throw notFound('server', id);
    requireProjectScope(callerOf(c), `server '${guest.name}'`, guest.project);
    const updated = await updateGuestLabels(db, guest.id, body.labels);
    if (!updated) throw notFound('server', id);
    return c.json(await withLiveState(updated));
  });

  return app;
}

/** Under the row's lock, so two patches of different keys both land. */
async function updateGuestLabels(db: Db, guestId: string, patch: LabelPatch): Promise<Guest | undefined> {
  return db.transaction(async (tx) => {
    const [row] = await tx.select().from(guests).where(eq(guests.id, guestId)).for('update');
    if (!row) return undefined;
    const [updated] = await tx
      .update(guests)
      .set({ labels: mergeLabels(row.labels, patch), updatedAt: new Date() })
      .where(eq(guests.id, guestId))
      .returning();
    return updated;
  });
}
