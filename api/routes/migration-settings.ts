import { createRoute } from '@hono/zod-openapi';
import { z } from 'zod';
import { guestMigrationSettings } from '../../activities/migration-settings.ts';
import { ensureCluster, findGuest } from '../../db/inventory.ts';
import {
  clusterMigrationConfig,
  deleteMigrationPolicy,
  findMigrationPolicy,
  insertMigrationPolicy,
  listMigrationPolicies,
  putClusterMigrationConfig,
  updateMigrationPolicy,
} from '../../db/settings-store.ts';
import {
  configFromRequest,
  DEFAULT_MIGRATION_CONFIG,
  migrationConfigRequestSchema,
} from '../../domain/migration-config.ts';
import { migrationPolicySchema, policyFromRequest } from '../../domain/migration-policy.ts';
import { callerOf, requireProjectScope } from '../caller.ts';
import type { ApiDeps } from '../deps.ts';
import { ApiError, jsonBody, notFound, parseOr400 } from '../errors.ts';
import { listCursor } from '../list-cursors.ts';
import { policyListQuerySchema } from '../schemas.ts';
import { nameKey } from '../../domain/page-keys.ts';
import { DEFAULT_PAGE_LIMIT, pageOf as pageOfRows } from '../../domain/paging.ts';
import {
  addRoute,
  AUTH_ERRORS,
  createdResponse,
  errorResponses,
  idParam,
  jsonBody as bodyOf,
  jsonResponse,
  routeGroup,
  viaJsonSchema,
} from '../openapi.ts';
import {
  migrationConfigSchema,
  pageOf,
  serverMigrationPolicySchema,
  storedPolicySchema,
} from '../response-schemas.ts';
import { asApiError } from '../settings-errors.ts';

const getConfig = createRoute({
  method: 'get',
  path: '/',
  tags: ['settings'],
  summary: "The cluster's migration config (KubeVirt's fields) and the defaults",
  responses: { 200: jsonResponse(migrationConfigSchema, 'the config'), ...errorResponses(...AUTH_ERRORS) },
});

const putConfig = createRoute({
  method: 'put',
  path: '/',
  tags: ['settings'],
  summary: 'Replace the config: a field left out restores its default',
  request: { body: bodyOf(migrationConfigRequestSchema) },
  responses: {
    200: jsonResponse(migrationConfigSchema, 'the config'),
    ...errorResponses(400, ...AUTH_ERRORS),
  },
});

const policyTags = ['settings'];
const policyBody = viaJsonSchema(migrationPolicySchema);
const policyName = z.object({ name: z.string().describe('policy name') });

const listPolicies = createRoute({
  method: 'get',
  path: '/',
  tags: policyTags,
  summary: "Migration policies (KubeVirt's MigrationPolicy)",
  request: { query: policyListQuerySchema },
  responses: {
    200: jsonResponse(pageOf(storedPolicySchema), 'a page of the policies, by name'),
    ...errorResponses(400, ...AUTH_ERRORS),
  },
});

const createPolicy = createRoute({
  method: 'post',
  path: '/',
  tags: policyTags,
  summary: 'Create a migration policy',
  request: { body: bodyOf(policyBody) },
  responses: {
    201: createdResponse(storedPolicySchema, 'the policy'),
    ...errorResponses(400, 409, ...AUTH_ERRORS),
  },
});

const getPolicy = createRoute({
  method: 'get',
  path: '/{name}',
  tags: policyTags,
  summary: 'One migration policy',
  request: { params: policyName },
  responses: { 200: jsonResponse(storedPolicySchema, 'the policy'), ...errorResponses(404, ...AUTH_ERRORS) },
});

const putPolicy = createRoute({
  method: 'put',
  path: '/{name}',
  tags: policyTags,
  summary: 'Replace a migration policy',
  request: { params: policyName, body: bodyOf(policyBody) },
  responses: {
    200: jsonResponse(storedPolicySchema, 'the policy'),
    ...errorResponses(400, 404, ...AUTH_ERRORS),
  },
});

const deletePolicy = createRoute({
  method: 'delete',
  path: '/{name}',
  tags: policyTags,
  summary: 'Delete a migration policy',
  request: { params: policyName },
  responses: {
    200: jsonResponse(storedPolicySchema, 'the deleted policy'),
    ...errorResponses(404, ...AUTH_ERRORS),
  },
});

const serverPolicy = createRoute({
  method: 'get',
  path: '/{id}/migration-policy',
  tags: ['servers'],
  summary: 'The policy that applies to the server, why, and every effective setting with where it came from',
  request: { params: idParam('server id or name') },
  responses: {
    200: jsonResponse(serverMigrationPolicySchema, 'the effective settings'),
    ...errorResponses(404, ...AUTH_ERRORS),
  },
});

/** GET/PUT /v1/migration-config: KubeVirt's fields; a field left out of a PUT restores its default. */
export function migrationConfigRoutes({ db }: ApiDeps) {
  const app = routeGroup();
  addRoute(app, getConfig, async (c) => {
    const config = await clusterMigrationConfig(db, await ensureCluster(db));
    return c.json({ config, defaults: DEFAULT_MIGRATION_CONFIG });
  });
  addRoute(app, putConfig, async (c) => {
    const body = await jsonBody(c);
    const config = asApiError(() => configFromRequest(body));
    await putClusterMigrationConfig(db, await ensureCluster(db), config);
    return c.json({ config, defaults: DEFAULT_MIGRATION_CONFIG });
  });
  return app;
}

export function migrationPolicyRoutes({ db }: ApiDeps) {
  const app = routeGroup();
  addRoute(app, listPolicies, async (c) => {
    const query = parseOr400(policyListQuerySchema, c.req.query());
    const limit = query.limit ?? DEFAULT_PAGE_LIMIT;
    // The name is the key: the cursor's id repeats it.
    const after = listCursor('migration-policies', query.cursor, (key) => nameKey(key, 'text'));
    const rows = await listMigrationPolicies(db, { after: after?.name, limit: limit + 1 });
    return c.json(pageOfRows('migration-policies', rows, limit, (p) => ({ sort: p.name, id: p.name })));
  });
  addRoute(app, createPolicy, async (c) => {
    const body = await jsonBody(c);
    const policy = asApiError(() => policyFromRequest(body));
    if ((await insertMigrationPolicy(db, policy)) === 'exists') {
      throw new ApiError(409, 'conflict', `a migration policy named '${policy.name}' already exists`, 'name');
    }
    c.header('Location', `/v1/migration-policies/${encodeURIComponent(policy.name)}`);
    return c.json(policy, 201);
  });
  addRoute(app, getPolicy, async (c) => {
    const name = c.req.param('name') ?? '';
    const policy = await findMigrationPolicy(db, name);
    if (!policy) throw notFound('migration policy', name);
    return c.json(policy);
  });
  addRoute(app, putPolicy, async (c) => {
    const name = c.req.param('name') ?? '';
    const body = await jsonBody(c);
    const named = body !== null && typeof body === 'object' ? { name, ...(body as object) } : body;
    const policy = asApiError(() => policyFromRequest(named));
    if (policy.name !== name) {
      throw new ApiError(
        400,
        'invalid_request',
        `name: '${policy.name}' differs from the path's '${name}'`,
        'name',
      );
    }
    if (!(await updateMigrationPolicy(db, policy))) throw notFound('migration policy', name);
    return c.json(policy);
  });
  addRoute(app, deletePolicy, async (c) => {
    const name = c.req.param('name') ?? '';
    const policy = await findMigrationPolicy(db, name);
    if (!policy || !(await deleteMigrationPolicy(db, name))) throw notFound('migration policy', name);
    return c.json(policy);
  });
  return app;
}

/** GET /v1/servers/:id/migration-policy: the effective settings, which policy won and why. */
export function serverMigrationPolicyRoutes({ db }: ApiDeps) {
  const app = routeGroup();
  addRoute(app, serverPolicy, async (c) => {
    const id = c.req.param('id') ?? '';
    const guest = await findGuest(db, id);
    if (!guest) throw notFound('server', id);
    requireProjectScope(callerOf(c), `server '${guest.name}'`, guest.project);
    const resolved = await guestMigrationSettings(db, guest.id);
    if (!resolved) throw notFound('server', id);
    return c.json({
      server: { id: guest.id, name: guest.name, labels: guest.labels, projectLabels: guest.projectLabels },
      policy: resolved.selection.policy?.name ?? null,
      explanation: resolved.selection.explanation,
      candidates: resolved.selection.candidates,
      settings: resolved.settings,
    });
  });
  return app;
}
