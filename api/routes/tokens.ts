import { Hono } from 'hono';
import { findApiToken, insertApiToken, listApiTokens, revokeApiToken } from '../../db/token-store.ts';
import type { ApiToken } from '../../db/schema.ts';
import { callerOf } from '../caller.ts';
import type { ApiDeps } from '../deps.ts';
import { ApiError, jsonBody, notFound, parseOr400 } from '../errors.ts';
import { createTokenSchema } from '../token-schemas.ts';
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
  return new Hono()
    .get('/', async (c) => c.json({ tokens: (await listApiTokens(db)).map(tokenView) }))
    .post('/', async (c) => {
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
      return c.json(
        { ...tokenView(created), token, note: 'the token is shown only this once; store it now' },
        201,
      );
    })
    .delete('/:id', async (c) => {
      const id = c.req.param('id');
      const found = await findApiToken(db, id);
      if (!found) throw notFound('token', id);
      const revoked = await revokeApiToken(db, found.id);
      if (!revoked) throw notFound('token', id);
      return c.json(tokenView(revoked));
    });
}
