import { createRoute } from '@hono/zod-openapi';
import { z } from 'zod';
import {
  bumpCredentialGeneration,
  consumeEnrolmentToken,
  findEnrolmentTokenByHash,
  insertEnrolmentToken,
} from '../../db/enrolment-store.ts';
import { findHost, recordEvent, upsertHostFromFacts } from '../../db/inventory.ts';
import type { EnrolmentToken } from '../../db/schema.ts';
import type { HostFacts } from '../../domain/agent-contract.ts';
import { hostCredential } from '../../domain/host-credential.ts';
import { assertAgentUrlFree } from '../agent-url-conflict.ts';
import { bearerToken } from '../authenticate.ts';
import { callerOf } from '../caller.ts';
import type { ApiDeps } from '../deps.ts';
import { ApiError, jsonBody, parseOr400 } from '../errors.ts';
import { hostFactsSchema } from '../schemas.ts';
import { generateEnrolmentToken, hashApiToken } from '../token-secret.ts';
import { ENROLMENT_TOKEN_PREFIX } from '../../domain/api-tokens.ts';
import {
  addRoute,
  AUTH_ERRORS,
  createdResponse,
  errorResponses,
  jsonBody as bodyOf,
  jsonResponse,
  routeGroup,
} from '../openapi.ts';
import { enrolmentSchema, enrolmentTokenSchema } from '../response-schemas.ts';
import { hostView } from '../views.ts';
import { clusterPeers } from '../peer-list.ts';

const DEFAULT_EXPIRY_S = 3600;
const MAX_EXPIRY_S = 7 * 24 * 3600;
const UNIT_S = { s: 1, m: 60, h: 3600, d: 86400 } as const;

/** `expires_in`: seconds, or a duration like `90s`, `30m`, `1h`, `2d`. */
const expiresInSchema = z.union([
  z.number().int().positive(),
  z
    .string()
    .regex(/^\d+[smhd]$/, 'a duration like 30m, 1h or 2d, or a number of seconds')
    .transform((v) => Number(v.slice(0, -1)) * UNIT_S[v.slice(-1) as keyof typeof UNIT_S]),
]);

const createEnrolmentTokenSchema = z.strictObject({
  name: z.string().min(1).max(63).optional(),
  host: z.string().min(1).max(253).optional(),
  expires_in: expiresInSchema.optional(),
});

function enrolmentTokenView(t: EnrolmentToken) {
  return {
    id: t.id,
    name: t.name,
    host: t.hostName,
    createdAt: t.createdAt,
    createdBy: t.createdBy,
    expiresAt: t.expiresAt,
    used: t.usedAt !== null,
  };
}

const createEnrolmentToken = createRoute({
  method: 'post',
  path: '/',
  tags: ['hosts'],
  summary: 'A one-time token a new host trades for its own credential (admin)',
  request: { body: bodyOf(createEnrolmentTokenSchema) },
  responses: {
    201: createdResponse(enrolmentTokenSchema, 'the enrolment token, shown only in this answer'),
    ...errorResponses(400, ...AUTH_ERRORS),
  },
});

const enrol = createRoute({
  method: 'post',
  path: '/enrol',
  tags: ['hosts'],
  summary: 'A new host trades a one-time enrolment token (bearer vme_…) for its own credential',
  description:
    'An exchange rather than a resource: the host and the credential, which is shown only in this answer. ' +
    'The bearer is the enrolment token, not an API token.',
  request: { body: bodyOf(hostFactsSchema) },
  responses: {
    200: jsonResponse(enrolmentSchema, 'the host and its credential'),
    ...errorResponses(400, 401, 403, 409),
  },
});

/** POST /v1/enrolment-tokens (admin): a one-time token a new host trades for its own credential. */
export function enrolmentTokenRoutes({ db }: ApiDeps) {
  const app = routeGroup();
  addRoute(app, createEnrolmentToken, async (c) => {
    const body = parseOr400(createEnrolmentTokenSchema, await jsonBody(c));
    const expiresIn = body.expires_in ?? DEFAULT_EXPIRY_S;
    if (expiresIn > MAX_EXPIRY_S) {
      throw new ApiError(400, 'invalid_request', 'expires_in: at most 7 days', 'expires_in');
    }
    const token = generateEnrolmentToken();
    const created = await insertEnrolmentToken(db, {
      name: body.name ?? null,
      hostName: body.host ?? null,
      tokenHash: hashApiToken(token),
      createdBy: callerOf(c).requester,
      expiresAt: new Date(Date.now() + expiresIn * 1000),
    });
    // An enrolment token cannot be read back: the location names it for the record only.
    c.header('Location', `/v1/enrolment-tokens/${created.id}`);
    return c.json(
      {
        ...enrolmentTokenView(created),
        token,
        note: 'the token is shown only this once and is good for one enrolment',
      },
      201,
    );
  });
  return app;
}

const unauthorized = (message: string) => new ApiError(401, 'unauthorized', message);

/**
 * POST /v1/hosts/enrol, bearer = an enrolment token, body = the host's facts. Consumes the token (one use, not
 * expired), creates the host (an existing host id only with a token made for that host's name: its generation
 * is bumped, revoking its old credential) and answers `{host, credential, peers}` once.
 */
export function enrolRoute({ db, liveness, agentCredentialKey }: ApiDeps) {
  const app = routeGroup();
  addRoute(app, enrol, async (c) => {
    const token = bearerToken(c.req.header('authorization'));
    if (!token.startsWith(ENROLMENT_TOKEN_PREFIX)) {
      throw unauthorized('POST /v1/hosts/enrol takes an enrolment token (vme_…) as bearer token');
    }
    const row = await findEnrolmentTokenByHash(db, hashApiToken(token));
    if (!row) throw unauthorized('unknown enrolment token');
    if (row.usedAt) throw unauthorized('enrolment token already used (it is good for one enrolment)');
    if (row.expiresAt.getTime() <= Date.now())
      throw unauthorized(`enrolment token expired at ${row.expiresAt.toISOString()}`);
    const facts: HostFacts = parseOr400(hostFactsSchema, await jsonBody(c));
    if (row.hostName !== null && row.hostName !== facts.name) {
      throw new ApiError(
        403,
        'forbidden',
        `this enrolment token is for host '${row.hostName}', not '${facts.name}'`,
        'name',
      );
    }
    const existing = await findHost(db, facts.hostId);
    const byName = await findHost(db, facts.name);
    if (byName && byName.id !== facts.hostId) {
      throw new ApiError(
        409,
        'conflict',
        `host name '${facts.name}' is already registered with id ${byName.id}`,
        'name',
      );
    }
    if (existing && existing.id === facts.hostId && row.hostName !== existing.name) {
      throw new ApiError(
        403,
        'forbidden',
        `host id ${facts.hostId} is already enrolled as '${existing.name}'; re-enrolling it needs an enrolment token created for that host (vmctl enrolment-token-create --host ${existing.name})`,
        'hostId',
      );
    }
    await assertAgentUrlFree(db, facts.agentUrl, facts.hostId, 'agentUrl');
    const known = existing?.id === facts.hostId ? existing : undefined;
    if (!(await consumeEnrolmentToken(db, row.id, facts.hostId))) {
      throw unauthorized('enrolment token already used or expired');
    }
    let host = await upsertHostFromFacts(db, facts);
    if (known) host = (await bumpCredentialGeneration(db, host.id)) ?? host;
    await recordEvent(db, {
      subjectKind: 'host',
      subjectId: host.id,
      type: 'enrolled',
      message: known
        ? `host ${host.name} re-enrolled from ${host.agentUrl}: its previous credential is revoked`
        : `host ${host.name} enrolled from ${host.agentUrl}`,
      data: { enrolmentTokenId: row.id, generation: host.credentialGeneration },
      requestedBy: row.createdBy,
    });
    return c.json({
      host: {
        ...hostView(host, await liveness.isOnline(host.id)),
        peers: await clusterPeers(db, host.clusterId),
      },
      credential: hostCredential(agentCredentialKey, host.id, host.credentialGeneration),
    });
  });
  return app;
}
