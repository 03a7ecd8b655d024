import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { generateApiToken, hashApiToken } from '../../api/token-secret.ts';
import { createTokenSchema } from '../../api/token-schemas.ts';
import {
  LAST_USED_RESOLUTION_MS,
  lastUsedIsStale,
  looksLikeApiToken,
  tokenScopeProblem,
} from '../../domain/api-tokens.ts';
import { inProjectScope, projectScopeRefusal, visibleProjects } from '../../domain/project-scope.ts';
import {
  BOOTSTRAP_REQUESTER,
  describeRequester,
  tokenRequester,
  triggerRequester,
} from '../../domain/requester.ts';

describe('API token secrets', () => {
  it('are vmt_ and 32 random bytes, recognisable, different each time', () => {
    const a = generateApiToken();
    const b = generateApiToken();
    expect(a).toMatch(/^vmt_[A-Za-z0-9_-]{43}$/);
    expect(looksLikeApiToken(a)).toBe(true);
    expect(a).not.toBe(b);
    expect(looksLikeApiToken('vmt_short')).toBe(false);
    expect(looksLikeApiToken('0b6a3f0e-6c1d-4c3a-9c53-1a1f5e4d9b77')).toBe(false);
  });

  it('are stored as the hex SHA-256 of the whole token', () => {
    expect(hashApiToken('vmt_abc')).toBe(createHash('sha256').update('vmt_abc').digest('hex'));
    expect(hashApiToken('vmt_abc')).toMatch(/^[0-9a-f]{64}$/);
    expect(hashApiToken('vmt_abc')).toBe(hashApiToken('vmt_abc'));
    expect(hashApiToken('vmt_abd')).not.toBe(hashApiToken('vmt_abc'));
  });
});

describe('token requests', () => {
  const parse = (body: unknown) => createTokenSchema.safeParse(body);
  const firstIssue = (body: unknown) => {
    const result = parse(body);
    return result.success
      ? null
      : { path: result.error.issues[0]?.path.join('.'), message: result.error.issues[0]?.message };
  };

  it('take a name, a role and optional projects (deduplicated)', () => {
    expect(parse({ name: 'ci', role: 'operator', projects: ['p1', 'p1', 'p2'] }).data).toEqual({
      name: 'ci',
      role: 'operator',
      projects: ['p1', 'p2'],
    });
    expect(parse({ name: 'ro', role: 'viewer' }).data).toEqual({ name: 'ro', role: 'viewer' });
  });

  it('name the field of what is wrong', () => {
    expect(firstIssue({ role: 'viewer' })).toMatchObject({
      path: 'name',
      message: expect.stringContaining('name'),
    });
    expect(firstIssue({ name: 'has space', role: 'viewer' })?.path).toBe('name');
    expect(firstIssue({ name: 'x', role: 'root' })).toEqual({
      path: 'role',
      message: 'role must be one of viewer, operator, admin',
    });
    expect(firstIssue({ name: 'x', role: 'viewer', projects: [] })?.path).toBe('projects');
    expect(firstIssue({ name: 'x', role: 'viewer', projects: [''] })?.path).toBe('projects.0');
    expect(firstIssue({ name: 'x', role: 'admin', projects: ['p1'] })?.path).toBe('projects');
  });

  it('refuse a scoped admin and an empty scope', () => {
    expect(tokenScopeProblem('admin', ['p1'])).toMatch(/admin/);
    expect(tokenScopeProblem('admin', undefined)).toBeNull();
    expect(tokenScopeProblem('operator', [])).toMatch(/at least one project/);
    expect(tokenScopeProblem('viewer', ['p1'])).toBeNull();
  });
});

describe('last use', () => {
  it('is refreshed at most once per resolution', () => {
    const now = new Date('2030-01-01T00:00:00Z');
    expect(lastUsedIsStale(null, now)).toBe(true);
    expect(lastUsedIsStale(new Date(now.getTime() - LAST_USED_RESOLUTION_MS + 1), now)).toBe(false);
    expect(lastUsedIsStale(new Date(now.getTime() - LAST_USED_RESOLUTION_MS), now)).toBe(true);
  });
});

describe('project scope', () => {
  it('lets an unscoped caller see and act on every project', () => {
    expect(inProjectScope({ role: 'operator' }, 'p9')).toBe(true);
    expect(visibleProjects({ role: 'viewer' })).toBeUndefined();
    expect(projectScopeRefusal({ role: 'admin' }, "server 'a'", 'p9')).toBeNull();
  });

  it('limits a scoped caller to its projects, naming the project it may not touch', () => {
    const caller = { role: 'operator' as const, projects: ['p1', 'p2'] };
    expect(inProjectScope(caller, 'p2')).toBe(true);
    expect(visibleProjects(caller)).toEqual(['p1', 'p2']);
    expect(projectScopeRefusal(caller, "server 'vm-b'", 'p3')).toBe(
      "server 'vm-b' belongs to project 'p3'; this token is limited to projects 'p1', 'p2'",
    );
    expect(projectScopeRefusal({ role: 'viewer', projects: ['p1'] }, "server 'vm-b'", 'p3')).toBe(
      "server 'vm-b' belongs to project 'p3'; this token is limited to project 'p1'",
    );
  });
});

describe('requesters', () => {
  it('name a token, the bootstrap token or a trigger', () => {
    expect(tokenRequester({ id: 't1', name: 'ci', role: 'operator' })).toEqual({
      by: 'token:ci',
      role: 'operator',
      tokenId: 't1',
    });
    expect(BOOTSTRAP_REQUESTER).toEqual({ by: 'bootstrap', role: 'admin' });
    expect(triggerRequester('alert', 'cpu-high')).toEqual({ by: 'alert:cpu-high', role: 'system' });
    expect(triggerRequester('host-down', 'host-1').by).toBe('host-down:host-1');
    expect(describeRequester(tokenRequester({ id: 't1', name: 'ci', role: 'operator' }))).toBe(
      'token:ci (operator)',
    );
    expect(describeRequester(null)).toMatch(/unknown/);
  });
});
