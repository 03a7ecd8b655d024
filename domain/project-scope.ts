import type { ApiRole } from './api-roles.ts';

/**
 * Who acts, as the rules see it: a role, and the projects a scoped token is limited to (absent: every project).
 * Carried in workflow inputs, so fields only ever get added, optionally.
 */
export interface Caller {
  role: ApiRole;
  projects?: string[];
}

/** The projects a caller's lists are filtered to; undefined: every project. */
export const visibleProjects = (caller: Caller): string[] | undefined => caller.projects;

export function inProjectScope(caller: Caller, project: string): boolean {
  return caller.projects === undefined || caller.projects.includes(project);
}

/**
 * Why the caller may not see or act on `what` of `project`, naming the project; null when it may.
 * `what` reads like "server 'vm-1'".
 */
export function projectScopeRefusal(caller: Caller, what: string, project: string): string | null {
  if (inProjectScope(caller, project)) return null;
  const scope = (caller.projects ?? []).map((p) => `'${p}'`).join(', ');
  return `${what} belongs to project '${project}'; this token is limited to project${(caller.projects ?? []).length === 1 ? '' : 's'} ${scope}`;
}
