import type { Context } from 'hono';
import { projectScopeRefusal, type Caller } from '../domain/project-scope.ts';
import type { Requester } from '../domain/requester.ts';
import { ApiError } from './errors.ts';

/** The authenticated caller of a request: role, project scope, and who it is for the records. */
export interface ApiCaller extends Caller {
  requester: Requester;
  /**
   * Set when a host calls with its own credential (caller kind `host`): it may call only the routes of
   * domain/api-roles.ts HOST_CREDENTIAL_ROUTES, and `role` means nothing then.
   */
  host?: { id: string; name: string };
}

declare module 'hono' {
  interface ContextVariableMap {
    caller: ApiCaller;
  }
}

/** Set by the auth middleware on every /v1 request. */
export function callerOf(c: Context): ApiCaller {
  const caller = c.get('caller') as ApiCaller | undefined;
  if (!caller) throw new Error(`no caller for ${c.req.method} ${c.req.path}: not behind the auth middleware`);
  return caller;
}

/** The caller as pre-checks and workflow inputs carry it: role and scope only. */
export const ruleCaller = ({ role, projects }: ApiCaller): Caller =>
  projects === undefined ? { role } : { role, projects };

/**
 * A 403 naming the project when `what` (e.g. "server 'vm-1'") belongs to a project outside the caller's scope;
 * thrown before anything is recorded or started.
 */
export function requireProjectScope(caller: ApiCaller, what: string, project: string): void {
  const refusal = projectScopeRefusal(caller, what, project);
  if (refusal === null) return;
  throw new ApiError(403, 'forbidden', refusal, undefined, {
    project,
    allowedProjects: caller.projects ?? null,
  });
}
