import { timingSafeEqual } from 'node:crypto';
import type { MiddlewareHandler } from 'hono';
import { ApiError } from './errors.ts';

function sameToken(given: string, expected: string): boolean {
  const a = Buffer.from(given);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}

/** Bearer-token auth with JSON 401s; the admin token is the only role for now. */
export function bearerAuth(expectedToken: string): MiddlewareHandler {
  return async (c, next) => {
    const header = c.req.header('authorization');
    if (!header) throw new ApiError(401, 'unauthorized', 'missing Authorization: Bearer <token> header');
    const match = /^Bearer\s+(.+)$/i.exec(header);
    if (!match?.[1] || !sameToken(match[1].trim(), expectedToken)) {
      throw new ApiError(401, 'unauthorized', 'invalid bearer token');
    }
    await next();
  };
}
