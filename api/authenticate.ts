import type { Db } from '../db/client.ts';
import { hostCredentialRows } from '../db/enrolment-store.ts';
import { findApiTokenByHash, touchApiToken } from '../db/token-store.ts';
import { isHostCredential, looksLikeHostCredential, sameSecret } from '../domain/host-credential.ts';
import { ENROLMENT_TOKEN_PREFIX, lastUsedIsStale, looksLikeApiToken } from '../domain/api-tokens.ts';
import { BOOTSTRAP_REQUESTER, tokenRequester } from '../domain/requester.ts';
import type { ApiCaller } from './caller.ts';
import { ApiError } from './errors.ts';
import { hashApiToken } from './token-secret.ts';

/** The token of an `Authorization: Bearer <token>` header; a 401 when there is none. */
export function bearerToken(header: string | undefined): string {
  if (!header) throw new ApiError(401, 'unauthorized', 'missing Authorization: Bearer <token> header');
  const match = /^Bearer\s+(.+)$/i.exec(header);
  const token = match?.[1]?.trim();
  if (!token) throw new ApiError(401, 'unauthorized', 'invalid bearer token');
  return token;
}

/**
 * Who the token is: the bootstrap admin token (API_TOKEN, every project), or a stored token found by its hash.
 * Nothing is cached, so a revoked token is refused on its very next request. A 401 otherwise.
 */
export async function authenticate(
  db: Db,
  bootstrapToken: string,
  token: string,
  agentCredentialKey: string,
): Promise<ApiCaller> {
  if (sameSecret(token, bootstrapToken)) return { role: 'admin', requester: BOOTSTRAP_REQUESTER };
  if (looksLikeHostCredential(token)) return authenticateHost(db, token, agentCredentialKey);
  if (token.startsWith(ENROLMENT_TOKEN_PREFIX)) {
    throw new ApiError(401, 'unauthorized', 'an enrolment token is good only for POST /v1/hosts/enrol');
  }
  if (!looksLikeApiToken(token)) throw new ApiError(401, 'unauthorized', 'invalid bearer token');
  const row = await findApiTokenByHash(db, hashApiToken(token));
  if (!row) throw new ApiError(401, 'unauthorized', 'invalid bearer token');
  if (row.revokedAt) throw new ApiError(401, 'unauthorized', `token '${row.name}' was revoked`);
  const now = new Date();
  if (lastUsedIsStale(row.lastUsedAt, now)) await touchApiToken(db, row.id, now);
  return {
    role: row.role,
    ...(row.projects !== null ? { projects: row.projects } : {}),
    requester: tokenRequester(row),
  };
}

/**
 * A host's own credential: the host whose derived credential it is (each host's is recomputed, a few
 * microseconds each, so the database holds no agent secret). The caller is of kind `host`: the auth
 * middleware lets it call only domain/api-roles.ts HOST_CREDENTIAL_ROUTES.
 */
async function authenticateHost(db: Db, token: string, key: string): Promise<ApiCaller> {
  for (const host of await hostCredentialRows(db)) {
    if (isHostCredential(key, token, host)) {
      return {
        role: 'viewer',
        host: { id: host.id, name: host.name },
        requester: { by: `host:${host.name}`, role: 'system' },
      };
    }
  }
  throw new ApiError(
    401,
    'unauthorized',
    'invalid host credential (unknown host, or revoked by a re-enrolment)',
  );
}
