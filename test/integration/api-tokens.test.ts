import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import path from 'node:path';
import { promisify } from 'node:util';
import { and, eq, sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { events, migrations } from '../../db/schema.ts';
import { startMiniStack, type MiniStack } from '../helpers/mini-stack.ts';
import { createRunningServer, waitForPhase, type ServerBody } from '../helpers/migrations.ts';
import { waitFor } from '../helpers/wait.ts';

const run = promisify(execFile);

interface CreatedToken {
  id: string;
  name: string;
  role: string;
  projects: string[] | null;
  token: string;
}
interface TokenListing {
  id: string;
  name: string;
  role: string;
  projects: string[] | null;
  lastUsedAt: string | null;
  revoked: boolean;
}
interface ErrorBody {
  error: { code: string; message: string; field?: string; requiredRole?: string; role?: string };
}

const ZERO_UUID = '00000000-0000-0000-0000-000000000000';

describe('API tokens: roles, project scope, revocation', () => {
  let stack: MiniStack;
  /** Every token secret the test saw, to prove none is listed or stored. */
  const secrets: string[] = [];
  const tokens = new Map<string, CreatedToken>();
  const servers = new Map<string, ServerBody>();

  const createToken = async (body: Record<string, unknown>) => {
    const res = await stack.api<CreatedToken>('POST', '/v1/tokens', body);
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    secrets.push(res.body.token);
    tokens.set(res.body.name, res.body);
    return res.body;
  };
  const as = <T = Record<string, unknown>>(name: string, method: string, urlPath: string, body?: unknown) => {
    const token = tokens.get(name)?.token;
    if (!token) throw new Error(`no token ${name}`);
    return stack.api<T>(method, urlPath, body, token);
  };
  const vmctl = (token: string, ...args: string[]) =>
    run(process.execPath, [path.resolve('cli/bin.js'), ...args], {
      env: { ...process.env, VMCTL_API_URL: stack.apiUrl, API_TOKEN: token },
    });
  const migrationRows = async (guestId: string) =>
    stack.db.db.select().from(migrations).where(eq(migrations.guestId, guestId));

  beforeAll(async () => {
    // The agents register with the bootstrap admin token: the stack is up only once they did.
    stack = await startMiniStack({ hosts: [{ name: 'h-a' }, { name: 'h-b' }] });
    const affinity = { 'affinity.app': 'web' };
    for (const [name, project, labels] of [
      ['vm-p1', 'p1', affinity],
      ['vm-p1-solo', 'p1', {}],
      ['vm-p2', 'p2', {}],
      ['vm-p2-web', 'p2', affinity],
    ] as const) {
      servers.set(name, await createRunningServer(stack, { name, host: 'h-a', project, labels }));
    }
    await createToken({ name: 'ro', role: 'viewer' });
    await createToken({ name: 'ops', role: 'operator' });
    await createToken({ name: 'boss', role: 'admin' });
    await createToken({ name: 'ops-p1', role: 'operator', projects: ['p1'] });
    await createToken({ name: 'ro-p1', role: 'viewer', projects: ['p1'] });
  });
  afterAll(async () => stack?.stop());

  it('shows a new token once, with its id; lists tokens without it; stores only its hash', async () => {
    const created = tokens.get('ops-p1');
    expect(created).toMatchObject({ role: 'operator', projects: ['p1'], id: expect.any(String) });
    expect(created?.token).toMatch(/^vmt_[A-Za-z0-9_-]{43}$/);

    const listed = await stack.api<{ items: TokenListing[] }>('GET', '/v1/tokens');
    expect(listed.status).toBe(200);
    expect(listed.body.items.map((t) => t.name).sort()).toEqual(['boss', 'ops', 'ops-p1', 'ro', 'ro-p1']);
    expect(listed.body.items.find((t) => t.name === 'ro-p1')).toMatchObject({
      role: 'viewer',
      projects: ['p1'],
      revoked: false,
    });
    const listedText = JSON.stringify(listed.body);
    expect(listedText).not.toContain('vmt_');
    expect(listedText).not.toMatch(/hash/i);

    const rows = await stack.db.db.execute<Record<string, unknown>>(sql`select * from api_tokens`);
    const stored = JSON.stringify(rows.rows);
    for (const secret of secrets) {
      expect(stored).not.toContain(secret);
      expect(stored).toContain(createHash('sha256').update(secret).digest('hex'));
    }
  });

  it('refuses bad token requests with a 400 naming the field, and a taken name with a 409', async () => {
    const cases: [unknown, string, string][] = [
      [{ role: 'viewer' }, 'name', 'name'],
      [{ name: 'x y', role: 'viewer' }, 'name', 'name'],
      [{ name: 'x' }, 'role', 'role must be one of viewer, operator, admin'],
      [{ name: 'x', role: 'root' }, 'role', 'role must be one of viewer, operator, admin'],
      [{ name: 'x', role: 'admin', projects: ['p1'] }, 'projects', 'admin'],
      [{ name: 'x', role: 'viewer', projects: [] }, 'projects', 'at least one project'],
    ];
    for (const [body, field, text] of cases) {
      const res = await stack.api<ErrorBody>('POST', '/v1/tokens', body);
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect(res.body.error.field).toBe(field);
      expect(res.body.error.message).toContain(text);
    }
    const taken = await stack.api<ErrorBody>('POST', '/v1/tokens', { name: 'ro', role: 'admin' });
    expect(taken.status).toBe(409);
    expect(taken.body.error).toMatchObject({ code: 'conflict', field: 'name' });
  });

  it('answers each role on representative endpoints as the role table says', async () => {
    const matrix: [string, string, unknown, { ro: number; ops: number; boss: number }][] = [
      ['GET', '/v1/hosts', undefined, { ro: 200, ops: 200, boss: 200 }],
      ['GET', '/v1/servers', undefined, { ro: 200, ops: 200, boss: 200 }],
      ['GET', '/v1/servers/vm-p1', undefined, { ro: 200, ops: 200, boss: 200 }],
      ['GET', '/v1/migrations', undefined, { ro: 200, ops: 200, boss: 200 }],
      ['GET', '/v1/migration-config', undefined, { ro: 200, ops: 200, boss: 200 }],
      ['GET', '/v1/migration-alerts', undefined, { ro: 200, ops: 200, boss: 200 }],
      ['GET', '/v1/tokens', undefined, { ro: 403, ops: 403, boss: 200 }],
      // Authorisation comes first: a role that may call the route gets to the 400 or 404.
      ['POST', '/v1/servers', { name: 'bad name' }, { ro: 403, ops: 400, boss: 400 }],
      ['POST', '/v1/servers/nope/live-migrate', {}, { ro: 403, ops: 404, boss: 404 }],
      ['POST', '/v1/servers/nope/migrate', {}, { ro: 403, ops: 404, boss: 404 }],
      ['POST', '/v1/servers/nope/stop', undefined, { ro: 403, ops: 404, boss: 404 }],
      ['POST', `/v1/migrations/${ZERO_UUID}/cancel`, undefined, { ro: 403, ops: 404, boss: 404 }],
      ['POST', `/v1/migrations/${ZERO_UUID}/force-complete`, undefined, { ro: 403, ops: 404, boss: 404 }],
      ['PUT', '/v1/migration-config', {}, { ro: 403, ops: 403, boss: 200 }],
      ['POST', '/v1/migration-policies', {}, { ro: 403, ops: 403, boss: 400 }],
      ['POST', '/v1/migration-alerts', {}, { ro: 403, ops: 403, boss: 400 }],
      ['POST', '/v1/hosts/nope/maintenance', undefined, { ro: 403, ops: 403, boss: 404 }],
      ['POST', '/v1/hosts/h-a/auto-migrate-on-host-down', {}, { ro: 403, ops: 403, boss: 200 }],
      ['POST', '/v1/tokens', { name: 'by-matrix' }, { ro: 403, ops: 403, boss: 400 }],
      ['DELETE', '/v1/tokens/nope', undefined, { ro: 403, ops: 403, boss: 404 }],
      // No route: a 404 whatever the role, never a 403.
      ['GET', '/v1/nothing-here', undefined, { ro: 404, ops: 404, boss: 404 }],
      ['POST', '/v1/hosts', {}, { ro: 404, ops: 404, boss: 404 }],
      ['DELETE', '/v1/servers/vm-p1', undefined, { ro: 404, ops: 404, boss: 404 }],
    ];
    const seen: string[] = [];
    const expected: string[] = [];
    for (const [method, urlPath, body, statuses] of matrix) {
      for (const role of ['ro', 'ops', 'boss'] as const) {
        const res = await as(role, method, urlPath, body);
        seen.push(`${role} ${method} ${urlPath} ${res.status}`);
        expected.push(`${role} ${method} ${urlPath} ${statuses[role]}`);
      }
    }
    expect(seen).toEqual(expected);
  });

  it('words a 403 with the role needed and the caller’s role', async () => {
    const res = await as<ErrorBody>('ro', 'POST', '/v1/servers/vm-p1/live-migrate', {});
    expect(res.status).toBe(403);
    expect(res.body.error).toEqual({
      code: 'forbidden',
      message: 'POST /v1/servers/:id/live-migrate needs role operator; token:ro has role viewer',
      requiredRole: 'operator',
      role: 'viewer',
    });
    const admin = await as<ErrorBody>('ops', 'PUT', '/v1/migration-config', {});
    expect(admin.body.error).toMatchObject({ requiredRole: 'admin', role: 'operator' });
  });

  it('keeps a project-scoped operator to its projects, refusing before anything is recorded', async () => {
    const other = servers.get('vm-p2');
    if (!other) throw new Error('no vm-p2');
    for (const [method, urlPath, body] of [
      ['POST', '/v1/servers/vm-p2/live-migrate', {}],
      ['POST', `/v1/servers/${other.id}/live-migrate`, { prefer_host: 'h-b' }],
      ['POST', '/v1/servers/vm-p2/migrate', {}],
      ['POST', '/v1/servers/vm-p2/stop', undefined],
      ['GET', '/v1/servers/vm-p2', undefined],
      ['POST', '/v1/servers', { name: 'vm-new', host: 'h-b', project: 'p2' }],
    ] as const) {
      const res = await as<ErrorBody>('ops-p1', method, urlPath, body);
      expect(res.status, `${method} ${urlPath}`).toBe(403);
      expect(res.body.error.code).toBe('forbidden');
      expect(res.body.error.message).toContain("belongs to project 'p2'");
      expect(res.body.error.message).toContain("limited to project 'p1'");
    }
    // with_same_labels would move vm-p2-web of project p2 along with vm-p1: refused as a whole.
    const group = await as<ErrorBody>('ops-p1', 'POST', '/v1/servers/vm-p1/live-migrate', {
      with_same_labels: true,
    });
    expect(group.status).toBe(403);
    expect(group.body.error.message).toContain(
      "server 'vm-p2-web' (same affinity labels) belongs to project 'p2'",
    );
    for (const name of ['vm-p1', 'vm-p2', 'vm-p2-web']) {
      expect(await migrationRows(servers.get(name)?.id ?? ''), name).toEqual([]);
    }
    expect((await as<ServerBody>('ops-p1', 'GET', '/v1/servers/vm-p2')).status).toBe(403);
    expect((await stack.api<ServerBody>('GET', '/v1/servers/vm-p2')).body.status).toBe('running');
  });

  it('lets a project-scoped operator migrate its own guest, recording who asked on the row and its events', async () => {
    const started = await as<{ id: string; destination: { name: string } | null }>(
      'ops-p1',
      'POST',
      '/v1/servers/vm-p1-solo/live-migrate',
      {},
    );
    expect(started.status, JSON.stringify(started.body)).toBe(202);
    const done = await waitForPhase(stack, started.body.id, ['completed', 'failed', 'cancelled']);
    expect(done.phase, done.error ?? '').toBe('completed');
    const token = tokens.get('ops-p1');
    const requester = { by: 'token:ops-p1', role: 'operator', tokenId: token?.id };
    const view = await as<{ requestedBy: unknown; events: { type: string; requestedBy: unknown }[] }>(
      'ro-p1',
      'GET',
      `/v1/migrations/${started.body.id}`,
    );
    expect(view.status).toBe(200);
    expect(view.body.requestedBy).toEqual(requester);
    expect(view.body.events.length).toBeGreaterThan(3);
    for (const e of view.body.events) expect(e.requestedBy, e.type).toEqual(requester);
    const [row] = await stack.db.db.select().from(migrations).where(eq(migrations.id, started.body.id));
    expect(row?.requestedBy).toEqual(requester);

    const shown = await vmctl(token?.token ?? '', 'migration-show', started.body.id);
    expect(shown.stdout).toContain('requested by: token:ops-p1 (operator)');
  });

  it('records the caller of a stop on the guest’s events', async () => {
    const stopped = await as('ops-p1', 'POST', '/v1/servers/vm-p1-solo/stop');
    expect(stopped.status).toBe(202);
    const guestId = servers.get('vm-p1-solo')?.id ?? '';
    const event = await waitFor('the stopped event', async () => {
      const [found] = await stack.db.db
        .select()
        .from(events)
        .where(and(eq(events.subjectId, guestId), eq(events.type, 'stopped')));
      return found ?? null;
    });
    expect(event.requestedBy).toMatchObject({ by: 'token:ops-p1', role: 'operator' });
  });

  it('shows a project-scoped viewer the servers and migrations of its projects only', async () => {
    const mine = await as<{ items: { name: string }[] }>('ro-p1', 'GET', '/v1/servers');
    expect(mine.body.items.map((s) => s.name).sort()).toEqual(['vm-p1', 'vm-p1-solo']);
    const all = await as<{ items: { name: string }[] }>('ro', 'GET', '/v1/servers');
    expect(all.body.items).toHaveLength(4);

    // A migration of p2's guest by the unscoped operator: the p1 viewer does not see it.
    const other = await as<{ id: string }>('ops', 'POST', '/v1/servers/vm-p2/live-migrate', {});
    expect(other.status, JSON.stringify(other.body)).toBe(202);
    await waitForPhase(stack, other.body.id, ['completed', 'failed', 'cancelled']);
    const scoped = await as<{ items: { guest: { name: string } }[] }>('ro-p1', 'GET', '/v1/migrations');
    expect(scoped.body.items.map((m) => m.guest.name)).toEqual(['vm-p1-solo']);
    const everyone = await as<{ items: unknown[] }>('ro', 'GET', '/v1/migrations');
    expect(everyone.body.items).toHaveLength(2);
    const hidden = await as<ErrorBody>('ro-p1', 'GET', `/v1/migrations/${other.body.id}`);
    expect(hidden.status).toBe(403);
    expect(hidden.body.error.message).toContain("belongs to project 'p2'");
    expect((await as<ErrorBody>('ro-p1', 'GET', '/v1/migrations?guest=vm-p2')).status).toBe(403);
    expect((await as<ErrorBody>('ops-p1', 'POST', `/v1/migrations/${other.body.id}/cancel`)).status).toBe(
      403,
    );
  });

  it('records the admin who put a host in maintenance on the evacuation’s moves and the host’s event', async () => {
    const entered = await as('boss', 'POST', '/v1/hosts/h-b/maintenance');
    expect(entered.status, JSON.stringify(entered.body)).toBe(202);
    const boss = { by: 'token:boss', role: 'admin', tokenId: tokens.get('boss')?.id };
    const moves = await waitFor(
      'the evacuation of h-b to end',
      async () => {
        const rows = (await stack.db.db.select().from(migrations)).filter((m) => m.trigger === 'maintenance');
        return rows.length === 2 && rows.every((m) => ['completed', 'failed', 'cancelled'].includes(m.phase))
          ? rows
          : null;
      },
      { timeoutMs: 90_000 },
    );
    for (const m of moves) expect(m.requestedBy, m.kind).toEqual(boss);
    const hostEvents = await stack.api<{ items: { action: string; requestedBy: unknown }[] }>(
      'GET',
      '/v1/hosts/h-b/events',
    );
    expect(hostEvents.body.items.find((e) => e.action === 'maintenance_enter')?.requestedBy).toEqual(boss);
    expect((await as('boss', 'DELETE', '/v1/hosts/h-b/maintenance')).status).toBe(200);
  });

  it('refuses a revoked token on its very next request', async () => {
    expect((await as('ops', 'GET', '/v1/servers')).status).toBe(200);
    const revoked = await stack.api<TokenListing>('DELETE', `/v1/tokens/${tokens.get('ops')?.id}`);
    expect(revoked.status).toBe(200);
    expect(revoked.body).toMatchObject({ name: 'ops', revoked: true });
    const next = await as<ErrorBody>('ops', 'GET', '/v1/servers');
    expect(next.status).toBe(401);
    expect(next.body.error).toMatchObject({ code: 'unauthorized', message: "token 'ops' was revoked" });

    // By name too, and the listing says so; a used token shows its last use.
    expect((await as('ro', 'GET', '/v1/hosts')).status).toBe(200);
    expect((await stack.api('DELETE', '/v1/tokens/ro')).status).toBe(200);
    expect((await as('ro', 'GET', '/v1/hosts')).status).toBe(401);
    const listed = await stack.api<{ items: TokenListing[] }>('GET', '/v1/tokens');
    const byName = new Map(listed.body.items.map((t) => [t.name, t]));
    expect(byName.get('ops')?.revoked).toBe(true);
    expect(byName.get('ro')).toMatchObject({ revoked: true, lastUsedAt: expect.any(String) });
    expect(byName.get('boss')?.revoked).toBe(false);
    // The bootstrap token is untouched by any of it.
    expect((await stack.api('GET', '/v1/tokens')).status).toBe(200);
  });

  it('creates, lists and revokes tokens through vmctl, printing the token once', async () => {
    const created = await vmctl(
      stack.apiToken,
      'token-create',
      '--role',
      'viewer',
      '--project',
      'p2',
      'cli-ro',
    );
    const token = created.stdout.trim();
    expect(token).toMatch(/^vmt_[A-Za-z0-9_-]{43}$/);
    expect(created.stderr).toContain("token 'cli-ro' created");
    const servers = await stack.api<{ items: { name: string }[] }>('GET', '/v1/servers', undefined, token);
    expect(servers.body.items.map((s) => s.name).sort()).toEqual(['vm-p2', 'vm-p2-web']);

    const listed = await vmctl(stack.apiToken, 'token-list');
    expect(listed.stdout).toMatch(/cli-ro\s+viewer\s+p2/);
    expect(listed.stdout).not.toContain('vmt_');

    // A viewer may not list tokens; vmctl says why.
    const refused = await vmctl(token, 'token-list').catch((err: { stderr: string; code: number }) => err);
    expect((refused as { code: number }).code).toBe(1);
    expect((refused as { stderr: string }).stderr).toContain('needs role admin');

    const revoked = await vmctl(stack.apiToken, 'token-revoke', 'cli-ro');
    expect(revoked.stdout).toContain("token 'cli-ro'");
    expect((await stack.api('GET', '/v1/servers', undefined, token)).status).toBe(401);
  });
});
