import { createRoute } from '@hono/zod-openapi';
import { z } from 'zod';
import { findApiToken, insertApiToken, listApiTokens, revokeApiToken } from '../../db/token-store.ts';
import type { ApiToken } from '../../db/schema.ts';
import { callerOf } from '../caller.ts';
import type { ApiDeps } from '../deps.ts';
import { ApiError, jsonBody, notFound, parseOr400 } from '../errors.ts';
import {
  addRoute,
  AUTH_ERRORS,
  createdResponse,
  errorResponses,
  jsonBody as bodyOf,
  jsonResponse,
  routeGroup,
} from '../openapi.ts';
import { createdTokenSchema, pageOf, tokenSchema } from '../response-schemas.ts';
import { tokenListQuerySchema } from '../schemas.ts';
import { createTokenSchema } from '../token-schemas.ts';
import { listCursor } from '../list-cursors.ts';
import { booleanFilter } from '../../domain/list-filters.ts';
import { timeKey } from '../../domain/page-keys.ts';
import { DEFAULT_PAGE_LIMIT, pageOf as pageOfRows } from '../../domain/paging.ts';

const tags = ['tokens'];

const listTokens = createRoute({
  method: 'get',
  path: '/',
  tags,
  summary: 'API tokens: name, role, projects, last use, revoked; never the token',
  request: { query: tokenListQuerySchema },
  responses: {
    200: jsonResponse(pageOf(tokenSchema), 'a page of the tokens, oldest first'),
    ...errorResponses(400, ...AUTH_ERRORS),
  },
});

const createToken = createRoute({
  method: 'post',
  path: '/',
  tags,
  summary: 'Create an API token with a role, optionally limited to projects',
  request: { body: bodyOf(createTokenSchema) },
  responses: {
    201: createdResponse(createdTokenSchema, 'the token record and the token, shown only in this answer'),
    ...errorResponses(400, 409, ...AUTH_ERRORS),
  },
});

const revokeToken = createRoute({
  method: 'delete',
  path: '/{id}',
  tags,
  summary: 'Revoke a token by id or name: its next request is a 401',
  request: { params: z.object({ id: z.string().describe('token id or name') }) },
  responses: { 200: jsonResponse(tokenSchema, 'the revoked token'), ...errorResponses(404, ...AUTH_ERRORS) },
});
import { generateApiToken, hashApiToken } from '../token-secret.ts';

/** A token as listed: never its secret or its hash. */
export function tokenView(t: ApiToken) {
  return {
    id: t.id,
    name: t.name,
    role: t.role,
    projects: t.projects,
    createdAt: t.createdAt,
    createdBy: t.createdBy,
    lastUsedAt: t.lastUsedAt,
    revoked: t.revokedAt !== null,
    revokedAt: t.revokedAt,
  };
}

/**
 * /v1/tokens (admin only, domain/api-roles.ts): create (the token is in this answer and nowhere else), list, and
 * revoke by id or name. Revocation takes effect on the token's next request: nothing caches tokens.
 */
export function tokenRoutes({ db }: ApiDeps) {
  const app = routeGroup();
  addRoute(app, listTokens, async (c) => {
    const query = parseOr400(tokenListQuerySchema, c.req.query());
    const limit = query.limit ?? DEFAULT_PAGE_LIMIT;
    const key = listCursor('tokens', query.cursor, (k) => timeKey(k, 'uuid'));
    const rows = await listApiTokens(db, {
      role: query.role,
      revoked: booleanFilter(query.revoked),
      after: key && { createdAt: key.at, id: key.id },
      limit: limit + 1,
    });
    const page = pageOfRows('tokens', rows, limit, (t) => ({ sort: t.pageKey, id: t.id }));
    return c.json({ items: page.items.map(tokenView), next_cursor: page.next_cursor });
  });
  addRoute(app, createToken, async (c) => {
    const body = parseOr400(createTokenSchema, await jsonBody(c));
    const token = generateApiToken();
    const created = await insertApiToken(db, {
      name: body.name,
      role: body.role,
      projects: body.projects ?? null,
      tokenHash: hashApiToken(token),
      createdBy: callerOf(c).requester,
    });
    if (created === 'name-taken') {
      throw new ApiError(409, 'conflict', `name: a token named '${body.name}' already exists`, 'name');
    }
    // No GET of one token: DELETE is what the location serves.
    c.header('Location', `/v1/tokens/${created.id}`);
    return c.json(
      { ...tokenView(created), token, note: 'the token is shown only this once; store it now' },
      201,
    );
  });
  addRoute(app, revokeToken, async (c) => {
    const id = c.req.param('id') ?? '';
    const found = await findApiToken(db, id);
    if (!found) throw notFound('token', id);
    const revoked = await revokeApiToken(db, found.id);
    if (!revoked) throw notFound('token', id);
    return c.json(tokenView(revoked));
  });
  return app;
}
