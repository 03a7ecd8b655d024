/**
 * Which API role may call which route: the one place that says it. The API's auth middleware asks `requiredRole`
 * for every request under /v1; a route without an entry is not a route of the API (the request ends in a 404,
 * never a 403), and a unit test holds this table and the app's routes to each other.
 */

/** Ordered: each role may do everything the previous one may. */
export const apiRoles = ['viewer', 'operator', 'admin'] as const;
export type ApiRole = (typeof apiRoles)[number];

export const isApiRole = (value: unknown): value is ApiRole => apiRoles.includes(value as ApiRole);

/** Whether `role` is `minimum` or above it. */
export function roleAtLeast(role: ApiRole, minimum: ApiRole): boolean {
  return apiRoles.indexOf(role) >= apiRoles.indexOf(minimum);
}

/**
 * `METHOD /path/:param` → the least role that may call it. viewer: reads; operator: servers' lifecycle and their
 * migrations; admin: the cluster's settings, hosts, alert rules and tokens (reading tokens too).
 */
export const ROUTE_ROLES = {
  'GET /v1/hosts': 'viewer',
  'GET /v1/hosts/:id': 'viewer',
  'GET /v1/hosts/:id/events': 'viewer',
  /** Admins may register hosts; a host's own credential may too, as itself only (HOST_CREDENTIAL_ROUTES). */
  'POST /v1/hosts/register': 'admin',
  /** What the agents hold: a host reports itself (HOST_CREDENTIAL_ROUTES); an admin may stand in for one. */
  'PUT /v1/hosts/:id/report': 'admin',
  'POST /v1/enrolment-tokens': 'admin',
  /** Changing where the workers call a host's agent: never the host itself. */
  'PATCH /v1/hosts/:id': 'admin',
  'POST /v1/hosts/:id/auto-migrate-on-host-down': 'admin',
  'POST /v1/hosts/:id/maintenance': 'admin',
  'DELETE /v1/hosts/:id/maintenance': 'admin',
  /** Removing a host frees its name for a reinstalled hypervisor (domain/host-removal.ts). */
  'DELETE /v1/hosts/:id': 'admin',

  'GET /v1/servers': 'viewer',
  'GET /v1/servers/:id': 'viewer',
  'GET /v1/servers/:id/migration-policy': 'viewer',
  'POST /v1/servers': 'operator',
  /** Labels select policies and affinity: whoever may create servers in the project may change them. */
  'PATCH /v1/servers/:id': 'operator',
  'POST /v1/servers/:id/live-migrate': 'operator',
  'POST /v1/servers/:id/migrate': 'operator',
  'POST /v1/servers/:id/stop': 'operator',
  'POST /v1/servers/:id/start': 'operator',

  'GET /v1/migrations': 'viewer',
  'GET /v1/migrations/groups/:groupId': 'viewer',
  'GET /v1/migrations/:id': 'viewer',
  'POST /v1/migrations/:id/cancel': 'operator',
  'POST /v1/migrations/:id/force-complete': 'operator',

  'GET /v1/migration-config': 'viewer',
  'PUT /v1/migration-config': 'admin',
  'GET /v1/migration-policies': 'viewer',
  'GET /v1/migration-policies/:name': 'viewer',
  'POST /v1/migration-policies': 'admin',
  'PUT /v1/migration-policies/:name': 'admin',
  'DELETE /v1/migration-policies/:name': 'admin',

  'GET /v1/migration-alerts': 'viewer',
  'GET /v1/migration-alerts/:id': 'viewer',
  'GET /v1/migration-alerts/:id/events': 'viewer',
  'GET /v1/migration-alert-events': 'viewer',
  'POST /v1/migration-alerts': 'admin',
  'PATCH /v1/migration-alerts/:id': 'admin',
  'DELETE /v1/migration-alerts/:id': 'admin',
  /** A dry run, but of a rule's cycle across every project's guests: part of managing rules. */
  'POST /v1/migration-alerts/:id/plan': 'admin',

  /** Token names, roles and scopes are the admin's business: listing them too. */
  'GET /v1/tokens': 'admin',
  'POST /v1/tokens': 'admin',
  'DELETE /v1/tokens/:id': 'admin',
} as const satisfies Record<string, ApiRole>;

export type RouteKey = keyof typeof ROUTE_ROLES;

/**
 * The other kind of caller: a host presenting its own credential (domain/host-credential.ts). It may call these
 * routes and nothing else (a 403 everywhere else, whatever the role table says).
 */
export const HOST_CREDENTIAL_ROUTES: readonly RouteKey[] = [
  'POST /v1/hosts/register',
  'PUT /v1/hosts/:id/report',
];

/** Every kind of caller: the API roles, and a host with its own credential. */
export const callerKinds = [...apiRoles, 'host'] as const;
export type CallerKind = (typeof callerKinds)[number];

/** Whether a caller of this kind may call `route`. */
export function callerKindMayCall(kind: CallerKind, route: RouteKey): boolean {
  if (kind === 'host') return HOST_CREDENTIAL_ROUTES.includes(route);
  return roleAtLeast(kind, ROUTE_ROLES[route]);
}

/**
 * The one route outside the table: it takes no API token but a one-time enrolment token (`vme_…`) of its own,
 * consumed by the route itself (api/routes/enrolment.ts).
 */
export const ENROLMENT_ROUTE = 'POST /v1/hosts/enrol';

interface RoutePattern {
  key: RouteKey;
  method: string;
  /** Path segments; null stands for a parameter. */
  segments: (string | null)[];
}

const splitPath = (path: string) => path.split('/');

const patterns: RoutePattern[] = Object.keys(ROUTE_ROLES).map((key) => {
  const [method = '', path = ''] = key.split(' ');
  return {
    key: key as RouteKey,
    method,
    segments: splitPath(path).map((s) => (s.startsWith(':') ? null : s)),
  };
});

function matches(pattern: RoutePattern, segments: string[]): boolean {
  return (
    pattern.segments.length === segments.length &&
    pattern.segments.every((s, i) => (s === null ? segments[i] !== '' : s === segments[i]))
  );
}

/** Negative when `a` is more specific: at the first segment where they differ, a literal beats a parameter. */
function bySpecificity(a: RoutePattern, b: RoutePattern): number {
  for (let i = 0; i < a.segments.length; i++) {
    const aParam = a.segments[i] === null;
    const bParam = b.segments[i] === null;
    if (aParam !== bParam) return aParam ? 1 : -1;
  }
  return 0;
}

/**
 * The route a request reaches: `path` is the request's path (no query), matched segment by segment as the router
 * does (a parameter matches one non-empty segment; a trailing slash is a different path). HEAD is served by GET
 * routes. Undefined: no route of the API.
 */
export function matchRoute(method: string, path: string): RouteKey | undefined {
  const verb = method.toUpperCase() === 'HEAD' ? 'GET' : method.toUpperCase();
  const segments = splitPath(path);
  const found = patterns.filter((p) => p.method === verb && matches(p, segments)).sort(bySpecificity);
  return found[0]?.key;
}

/** The least role that may make this request, or undefined when no route answers it (a 404 follows). */
export function requiredRole(method: string, path: string): { route: RouteKey; role: ApiRole } | undefined {
  const route = matchRoute(method, path);
  return route ? { route, role: ROUTE_ROLES[route] } : undefined;
}
