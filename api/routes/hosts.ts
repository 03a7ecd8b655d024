import { AgentClient } from '../../activities/agent-client.ts';
import { createRoute } from '@hono/zod-openapi';
import { z } from 'zod';
import { setHostAgentUrl } from '../../db/enrolment-store.ts';
import { assertAgentUrlFree } from '../agent-url-conflict.ts';
import { hostEvents, updateHostAutoMigrateFlags } from '../../db/host-store.ts';
import { findHost, listHosts, recordEvent, upsertHostFromFacts } from '../../db/inventory.ts';
import type { HostFacts } from '../../domain/agent-contract.ts';
import { callerOf } from '../caller.ts';
import type { ApiDeps } from '../deps.ts';
import { ApiError, jsonBody, notFound, parseOr400 } from '../errors.ts';
import { hostEventView } from '../host-event-views.ts';
import { hostAutoMigrateSchema } from '../host-schemas.ts';
import { hostEventListQuerySchema, hostFactsSchema, hostListQuerySchema } from '../schemas.ts';
import { listCursor } from '../list-cursors.ts';
import { booleanFilter, hostStatusCondition, labelFilter } from '../../domain/list-filters.ts';
import { nameKey, timeKey } from '../../domain/page-keys.ts';
import { DEFAULT_PAGE_LIMIT, pageOf as pageOfRows } from '../../domain/paging.ts';
import {
  addRoute,
  AUTH_ERRORS,
  errorResponses,
  idParam,
  jsonBody as bodyOf,
  jsonResponse,
  routeGroup,
} from '../openapi.ts';
import { hostEventSchema, hostSchema, pageOf, registeredHostSchema } from '../response-schemas.ts';
import { hostView } from '../views.ts';
import { PEERS_REVISION_HEADER, PeerListCache } from '../peer-list.ts';

/** Hosts by id or name; auto-migrate-on-host-down is Cloudpods' PerformAutoMigrateOnHostDown. */
/** How long the flags endpoint waits for the host's agent to confirm its fencing. */
const AGENT_ARM_TIMEOUT_MS = 5_000;

const hostPatchSchema = z.strictObject({
  agent_url: z.url({ protocol: /^https?$/, error: 'agent_url: an http(s) URL' }),
});

const tags = ['hosts'];
const hostId = idParam('host id or name');

const listHostsRoute = createRoute({
  method: 'get',
  path: '/',
  tags,
  summary: 'Hosts with facts from their agents; status from the etcd lease',
  request: { query: hostListQuerySchema },
  responses: {
    200: jsonResponse(pageOf(hostSchema), 'a page of the hosts, by name'),
    ...errorResponses(400, ...AUTH_ERRORS),
  },
});

const getHost = createRoute({
  method: 'get',
  path: '/{id}',
  tags,
  summary: 'One host',
  request: { params: hostId },
  responses: { 200: jsonResponse(hostSchema, 'the host'), ...errorResponses(404, ...AUTH_ERRORS) },
});

const hostEventsRoute = createRoute({
  method: 'get',
  path: '/{id}/events',
  tags,
  summary: "The host's events, newest first",
  request: { params: hostId, query: hostEventListQuerySchema },
  responses: {
    200: jsonResponse(pageOf(hostEventSchema), 'a page of the events, newest first'),
    ...errorResponses(400, 404, ...AUTH_ERRORS),
  },
});

const hostFlags = createRoute({
  method: 'post',
  path: '/{id}/auto-migrate-on-host-down',
  tags,
  summary: "Cloudpods' host flags auto_migrate_on_host_down / auto_migrate_on_host_shutdown",
  request: { params: hostId, body: bodyOf(hostAutoMigrateSchema) },
  responses: {
    200: jsonResponse(hostSchema, 'the host with its flags'),
    ...errorResponses(400, 404, 503, ...AUTH_ERRORS),
  },
});

const registerHost = createRoute({
  method: 'post',
  path: '/register',
  tags,
  summary: 'A host agent registers (and refreshes) its facts with its own credential',
  request: { body: bodyOf(hostFactsSchema) },
  responses: {
    200: jsonResponse(registeredHostSchema, "the host and its cluster's registered hosts (peers)"),
    ...errorResponses(400, 409, ...AUTH_ERRORS),
  },
});

const patchHost = createRoute({
  method: 'patch',
  path: '/{id}',
  tags,
  summary: "Where the workers and the API call the host's agent (admin)",
  request: { params: hostId, body: bodyOf(hostPatchSchema) },
  responses: {
    200: jsonResponse(hostSchema, 'the host'),
    ...errorResponses(400, 404, 409, ...AUTH_ERRORS),
  },
});

const forbidden = (message: string, field?: string) => new ApiError(403, 'forbidden', message, field);

export function hostRoutes({ db, liveness, agentCredentials }: ApiDeps) {
  const peerLists = new PeerListCache(db);
  const hostOr404 = async (id: string) => {
    const host = await findHost(db, id);
    if (!host) throw notFound('host', id);
    return host;
  };
  const app = routeGroup();
  addRoute(app, listHostsRoute, async (c) => {
    const query = parseOr400(hostListQuerySchema, c.req.query());
    const limit = query.limit ?? DEFAULT_PAGE_LIMIT;
    const after = listCursor('hosts', query.cursor, (key) => nameKey(key, 'uuid'));
    // One read of the leases serves the status filter and the page's statuses alike.
    const online = await liveness.onlineHostIds();
    const rows = await listHosts(db, {
      status: query.status !== undefined ? hostStatusCondition(query.status, online) : undefined,
      enabled: booleanFilter(query.enabled),
      driver: query.driver,
      label: query.label !== undefined ? labelFilter(query.label) : undefined,
      after,
      limit: limit + 1,
    });
    const page = pageOfRows('hosts', rows, limit, (h) => ({ sort: h.name, id: h.id }));
    return c.json({
      items: page.items.map((h) => hostView(h, online.has(h.id))),
      next_cursor: page.next_cursor,
    });
  });
  addRoute(app, getHost, async (c) => {
    const host = await hostOr404(c.req.param('id') ?? '');
    return c.json(hostView(host, await liveness.isOnline(host.id)));
  });
  addRoute(app, hostEventsRoute, async (c) => {
    const query = parseOr400(hostEventListQuerySchema, c.req.query());
    const limit = query.limit ?? DEFAULT_PAGE_LIMIT;
    const before = listCursor('host-events', query.cursor, (key) => timeKey(key, 'serial'));
    const host = await hostOr404(c.req.param('id') ?? '');
    const rows = await hostEvents(db, host.id, {
      type: query.type,
      level: query.level,
      since: query.since !== undefined ? new Date(query.since) : undefined,
      before,
      limit: limit + 1,
    });
    const page = pageOfRows('host-events', rows, limit, (e) => ({ sort: e.pageKey, id: String(e.id) }));
    return c.json({
      items: page.items.map(({ pageKey: _key, ...e }) => hostEventView(e, host)),
      next_cursor: page.next_cursor,
    });
  });
  addRoute(app, hostFlags, async (c) => {
    const patch = parseOr400(hostAutoMigrateSchema, await jsonBody(c));
    const host = await hostOr404(c.req.param('id') ?? '');
    // A rescue may only start the guests elsewhere once the host fences them when it loses its lease: the
    // agent is armed first, and the flag stays off if it cannot be.
    const requester = callerOf(c).requester;
    const outcome = await updateHostAutoMigrateFlags(
      db,
      host.id,
      patch,
      async (locked) => {
        try {
          await new AgentClient(
            locked.agentUrl,
            agentCredentials.forHost(locked),
            AGENT_ARM_TIMEOUT_MS,
          ).setFencing(true);
        } catch (err) {
          throw new ApiError(
            503,
            'agent_unreachable',
            `auto_migrate_on_host_down: the agent of host ${locked.name} did not confirm it will fence its guests (${(err as Error).message}); the flag stays off`,
            'auto_migrate_on_host_down',
          );
        }
      },
      requester,
    );
    if (!outcome) throw notFound('host', c.req.param('id') ?? '');
    if (!outcome.ok) throw new ApiError(400, 'invalid_request', outcome.message, outcome.field);
    if (!outcome.host.autoMigrateOnHostDown && host.autoMigrateOnHostDown) {
      // Best effort: an agent that misses it follows the flag at its next registration.
      await new AgentClient(host.agentUrl, agentCredentials.forHost(host), AGENT_ARM_TIMEOUT_MS)
        .setFencing(false)
        .catch(() => undefined);
    }
    return c.json(hostView(outcome.host, await liveness.isOnline(outcome.host.id)));
  });
  addRoute(app, registerHost, async (c) => {
    const facts: HostFacts = parseOr400(hostFactsSchema, await jsonBody(c));
    const caller = callerOf(c);
    if (caller.host) {
      // A host's own credential registers that host only, and never moves where the workers call it.
      if (caller.host.id !== facts.hostId) {
        throw forbidden(
          `host_id: this credential is host ${caller.host.name}'s (${caller.host.id}), not ${facts.hostId}'s`,
          'hostId',
        );
      }
      const own = await findHost(db, caller.host.id);
      if (own && own.agentUrl !== facts.agentUrl) {
        throw forbidden(
          `changing agent_url needs an admin: PATCH /v1/hosts/:id {agent_url} (registered ${own.agentUrl}, asked ${facts.agentUrl})`,
          'agentUrl',
        );
      }
      if (own && own.name !== facts.name) {
        throw forbidden(
          `changing a host's name needs a re-enrolment (registered '${own.name}', asked '${facts.name}')`,
          'name',
        );
      }
    }
    const clash = await findHost(db, facts.name);
    if (clash && clash.id !== facts.hostId) {
      return c.json(
        {
          error: {
            code: 'conflict',
            message: `host name '${facts.name}' is already registered with id ${clash.id}`,
            field: 'name',
          },
        },
        409,
      );
    }
    const host = await upsertHostFromFacts(db, facts);
    if (!clash) {
      await recordEvent(db, {
        subjectKind: 'host',
        subjectId: host.id,
        type: 'registered',
        message: `host ${host.name} registered from ${host.agentUrl}`,
        data: { qemuVersion: host.qemuVersion, cpuModel: host.cpuModel },
        requestedBy: callerOf(c).requester,
      });
    }
    // The peer list only when the agent does not hold this revision already: at a fleet's size it is most of
    // the answer, and every host registers every minute.
    const { revision, peers } = await peerLists.withHost(host);
    const held = c.req.header(PEERS_REVISION_HEADER);
    return c.json({
      ...hostView(host, await liveness.isOnline(host.id)),
      peersRevision: revision,
      ...(held === revision ? {} : { peers }),
    });
  });
  addRoute(app, patchHost, async (c) => {
    // Admin only (domain/api-roles.ts): where the workers send this host's credential.
    const patch = parseOr400(hostPatchSchema, await jsonBody(c));
    const host = await hostOr404(c.req.param('id') ?? '');
    await assertAgentUrlFree(db, patch.agent_url, host.id, 'agent_url');
    const updated = await setHostAgentUrl(db, host.id, patch.agent_url);
    if (!updated) throw notFound('host', c.req.param('id') ?? '');
    await recordEvent(db, {
      subjectKind: 'host',
      subjectId: host.id,
      type: 'agent_url_changed',
      message: `host ${host.name}: agent_url ${host.agentUrl} → ${updated.agentUrl}`,
      requestedBy: callerOf(c).requester,
    });
    agentCredentials.forget?.(host.agentUrl);
    return c.json(hostView(updated, await liveness.isOnline(updated.id)));
  });
  return app;
}
