import { describe, expect, it } from 'vitest';
import { createApp } from '../../api/app.ts';
import type { ApiDeps } from '../../api/deps.ts';
import {
  apiRoles,
  callerKindMayCall,
  callerKinds,
  ENROLMENT_ROUTE,
  HOST_CREDENTIAL_ROUTES,
  matchRoute,
  requiredRole,
  roleAtLeast,
  ROUTE_ROLES,
  type ApiRole,
} from '../../domain/api-roles.ts';

/** Every route the app really serves under /v1, read from the Hono app itself (middleware excluded). */
function appRoutes(): string[] {
  // Building the app only wires handlers; nothing is called on the deps until a request comes.
  const app = createApp({} as ApiDeps);
  const keys = app.routes
    .filter((r) => r.method !== 'ALL' && r.path.startsWith('/v1/'))
    .map((r) => `${r.method} ${r.path}`)
    // Enrolment takes its own one-time token, outside the table (its own test below).
    .filter((key) => key !== ENROLMENT_ROUTE);
  return [...new Set(keys)].sort();
}

/** A concrete path reaching the pattern: each parameter becomes a value. */
const concrete = (pattern: string) => pattern.replace(/:[A-Za-z]+/g, 'some-id');

/**
 * The policy as the issue states it, written independently of the table: viewers read (every GET but the token
 * list), operators also run servers and their migrations, admins do everything else.
 */
const OPERATOR_ROUTES = new Set([
  'POST /v1/servers',
  'PATCH /v1/servers/:id',
  'POST /v1/servers/:id/live-migrate',
  'POST /v1/servers/:id/migrate',
  'POST /v1/servers/:id/stop',
  'POST /v1/servers/:id/start',
  'POST /v1/migrations/:id/cancel',
  'POST /v1/migrations/:id/force-complete',
]);
function expectedMinimum(route: string): ApiRole {
  const [method, path = ''] = route.split(' ');
  if (path.startsWith('/v1/tokens')) return 'admin';
  if (method === 'GET') return 'viewer';
  if (OPERATOR_ROUTES.has(route)) return 'operator';
  return 'admin';
}

describe('the route role table', () => {
  const routes = appRoutes();

  it('has an entry for every route of the app, and no entry the app does not serve', () => {
    expect(routes.length).toBeGreaterThan(30);
    expect(routes.filter((r) => !(r in ROUTE_ROLES))).toEqual([]);
    expect(Object.keys(ROUTE_ROLES).filter((k) => !routes.includes(k))).toEqual([]);
  });

  it('resolves a concrete request of each route to that route', () => {
    for (const route of routes) {
      const [method = '', path = ''] = route.split(' ');
      expect(matchRoute(method, concrete(path)), route).toBe(route);
    }
  });

  describe.each(apiRoles)('role %s', (role) => {
    it.each(routes)('%s', (route) => {
      const [method = '', path = ''] = route.split(' ');
      const needed = requiredRole(method, concrete(path));
      expect(needed?.route).toBe(route);
      const allowed = roleAtLeast(role, needed?.role ?? 'admin');
      expect(allowed).toBe(roleAtLeast(role, expectedMinimum(route)));
    });
  });

  it('lets viewers read everything but the tokens, and nothing else', () => {
    for (const route of routes) {
      const [method = '', path = ''] = route.split(' ');
      const viewerMay = roleAtLeast('viewer', requiredRole(method, concrete(path))?.role ?? 'admin');
      expect(viewerMay, route).toBe(method === 'GET' && !path.startsWith('/v1/tokens'));
    }
  });

  describe.each(callerKinds)('caller kind %s', (kind) => {
    it.each(routes)('%s', (route) => {
      const allowed = callerKindMayCall(kind, route as keyof typeof ROUTE_ROLES);
      const expected =
        kind === 'host'
          ? route === 'POST /v1/hosts/register' || route === 'PUT /v1/hosts/:id/report'
          : roleAtLeast(kind, expectedMinimum(route));
      expect(allowed).toBe(expected);
    });
  });

  it('lets a host credential register and report its guests, and nothing else', () => {
    expect(HOST_CREDENTIAL_ROUTES).toEqual(['POST /v1/hosts/register', 'PUT /v1/hosts/:id/report']);
    expect(routes.filter((r) => callerKindMayCall('host', r as keyof typeof ROUTE_ROLES))).toEqual([
      'POST /v1/hosts/register',
      'PUT /v1/hosts/:id/report',
    ]);
  });

  it('serves the enrolment route outside the table (it takes an enrolment token, no API token)', () => {
    const app = createApp({} as ApiDeps);
    expect(app.routes.some((r) => `${r.method} ${r.path}` === ENROLMENT_ROUTE)).toBe(true);
    expect(matchRoute('POST', '/v1/hosts/enrol')).toBeUndefined();
  });

  it('keeps host registration (the agents, with the bootstrap token) and tokens for admins', () => {
    expect(requiredRole('POST', '/v1/hosts/register')).toEqual({
      route: 'POST /v1/hosts/register',
      role: 'admin',
    });
    expect(requiredRole('GET', '/v1/tokens')?.role).toBe('admin');
    expect(requiredRole('POST', '/v1/enrolment-tokens')?.role).toBe('admin');
    expect(requiredRole('PATCH', '/v1/hosts/h1')?.role).toBe('admin');
    expect(requiredRole('DELETE', '/v1/tokens/ci-bot')?.role).toBe('admin');
  });
});

describe('matchRoute', () => {
  it('answers undefined for what no route serves, so the request ends in a 404', () => {
    expect(matchRoute('GET', '/v1/nothing')).toBeUndefined();
    expect(matchRoute('POST', '/v1/hosts')).toBeUndefined();
    expect(matchRoute('PATCH', '/v1/servers/vm-1/stop')).toBeUndefined();
    expect(matchRoute('OPTIONS', '/v1/servers')).toBeUndefined();
    expect(matchRoute('GET', '/v1/servers/')).toBeUndefined();
    expect(matchRoute('GET', '/v1/servers//migration-policy')).toBeUndefined();
    expect(matchRoute('GET', '/v1/servers/vm-1/extra/segments')).toBeUndefined();
    expect(matchRoute('GET', '/healthz')).toBeUndefined();
  });

  it('prefers a literal segment to a parameter, as the router does', () => {
    expect(matchRoute('GET', '/v1/migrations/groups/0a1b')).toBe('GET /v1/migrations/groups/:groupId');
    expect(matchRoute('GET', '/v1/migrations/0a1b')).toBe('GET /v1/migrations/:id');
    expect(matchRoute('POST', '/v1/hosts/register')).toBe('POST /v1/hosts/register');
    expect(matchRoute('GET', '/v1/hosts/register')).toBe('GET /v1/hosts/:id');
  });

  it('serves HEAD as GET and ignores the case of the method', () => {
    expect(matchRoute('HEAD', '/v1/servers')).toBe('GET /v1/servers');
    expect(matchRoute('post', '/v1/servers/vm-1/stop')).toBe('POST /v1/servers/:id/stop');
  });
});

describe('roleAtLeast', () => {
  it('orders viewer < operator < admin', () => {
    const table = apiRoles.map((role) => apiRoles.map((minimum) => roleAtLeast(role, minimum)));
    expect(table).toEqual([
      [true, false, false],
      [true, true, false],
      [true, true, true],
    ]);
  });
});
