import type { ApiRole } from './api-roles.ts';

/**
 * API tokens: `vmt_` and 43 base64url characters (32 random bytes), so one is recognisable in a config file or a
 * leaked log. Only their SHA-256 is stored; a request's token is looked up by its hash.
 */
export const API_TOKEN_PREFIX = 'vmt_';
/** A one-time enrolment token: a new host trades it for its own credential (POST /v1/hosts/enrol). */
export const ENROLMENT_TOKEN_PREFIX = 'vme_';
const API_TOKEN_PATTERN = /^vmt_[A-Za-z0-9_-]{43}$/;

export const looksLikeApiToken = (value: string): boolean => API_TOKEN_PATTERN.test(value);

/** A token's name: like a server's, letters, digits, '.', '_' or '-', at most 63. */
export const TOKEN_NAME_PATTERN = /^[a-zA-Z0-9][a-zA-Z0-9._-]{0,62}$/;

/**
 * Why a token of `role` cannot have `projects` (undefined: unscoped), or null. An admin changes the cluster's
 * settings, hosts and tokens, none of which belong to a project: a scoped admin would be a contradiction.
 */
export function tokenScopeProblem(role: ApiRole, projects: string[] | undefined): string | null {
  if (projects === undefined) return null;
  if (role === 'admin') {
    return 'an admin token acts on the whole cluster and cannot be limited to projects (leave projects out, or use role operator or viewer)';
  }
  if (projects.length === 0) return 'at least one project (leave projects out for every project)';
  return null;
}

/** last_used_at is refreshed at most this often, so a busy token does not rewrite its row on every request. */
export const LAST_USED_RESOLUTION_MS = 60_000;

export function lastUsedIsStale(lastUsedAt: Date | null, now: Date): boolean {
  return lastUsedAt === null || now.getTime() - lastUsedAt.getTime() >= LAST_USED_RESOLUTION_MS;
}
