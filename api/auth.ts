import type { MiddlewareHandler } from 'hono';
import type { Db } from '../db/client.ts';
import {
  callerKindMayCall,
  ENROLMENT_ROUTE,
  HOST_CREDENTIAL_ROUTES,
  requiredRole,
} from '../domain/api-roles.ts';
import { authenticate, bearerToken } from './authenticate.ts';
import { ApiError } from './errors.ts';

/**
 * Every /v1 request: who calls (a 401 without a valid token), then whether its role may call the route
 * (domain/api-roles.ts; a 403 naming the role needed and the caller's). A path no route answers goes on to the
 * app's 404. The caller is left on the context for the routes (`callerOf`).
 */
export function apiAuth({
  db,
  apiToken,
  agentCredentialKey,
}: {
  db: Db;
  apiToken: string;
  agentCredentialKey: string;
}): MiddlewareHandler {
  return async (c, next) => {
    // Enrolment authenticates with its own one-time token, consumed by the route (api/routes/enrolment.ts).
    if (`${c.req.method.toUpperCase()} ${c.req.path}` === ENROLMENT_ROUTE) return next();
    const caller = await authenticate(
      db,
      apiToken,
      bearerToken(c.req.header('authorization')),
      agentCredentialKey,
    );
    const needed = requiredRole(c.req.method, c.req.path);
    if (needed && caller.host && !callerKindMayCall('host', needed.route)) {
      throw new ApiError(
        403,
        'forbidden',
        `${needed.route}: a host credential (${caller.requester.by}) may call only ${HOST_CREDENTIAL_ROUTES.join(' and ')}`,
        undefined,
        { requiredRole: needed.role, role: 'host' },
      );
    }
    if (needed && !caller.host && !callerKindMayCall(caller.role, needed.route)) {
      throw new ApiError(
        403,
        'forbidden',
        `${needed.route} needs role ${needed.role}; ${caller.requester.by} has role ${caller.role}`,
        undefined,
        { requiredRole: needed.role, role: caller.role },
      );
    }
    c.set('caller', caller);
    await next();
  };
}
