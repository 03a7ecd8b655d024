import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import path from 'node:path';
import { promisify } from 'node:util';
import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { HostFacts } from '../../domain/agent-contract.ts';
import { startMiniStack, type MiniStack } from '../helpers/mini-stack.ts';
import { createRunningServer, liveMigrate, migrationOf, waitForPhase } from '../helpers/migrations.ts';
import { waitFor } from '../helpers/wait.ts';

interface RemovalAnswer {
  removed?: { id: string; name: string };
  error?: { code: string; message: string; blockers?: { kind: string; guests?: string[] }[] };
}

describe('DELETE /v1/hosts/:id (vmctl host-delete)', () => {
  let stack: MiniStack;

  const call = async (method: string, path: string, token: string, body?: unknown) => {
    const res = await fetch(`${stack.apiUrl}${path}`, {
      method,
      headers: {
        authorization: `Bearer ${token}`,
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    return { status: res.status, body: (text ? JSON.parse(text) : null) as Record<string, unknown> };
  };
  const vmctl = (...args: string[]) =>
    promisify(execFile)(process.execPath, [path.resolve('cli/bin.js'), ...args], {
      env: { ...process.env, VMCTL_API_URL: stack.apiUrl, API_TOKEN: stack.apiToken },
    });
  const removeHost = (name: string) => stack.api<RemovalAnswer>('DELETE', `/v1/hosts/${name}`);
  /** What the host's agent registers with. */
  const factsOf = async (name: string): Promise<HostFacts> => {
    const res = await fetch(`${stack.agents.get(name)!.url}/v1/facts`, {
      headers: { authorization: `Bearer ${stack.agentCredential(name)}` },
    });
    return (await res.json()) as HostFacts;
  };
  const hostIdOf = async (name: string) =>
    (await stack.api<{ id: string }>('GET', `/v1/hosts/${name}`)).body.id;

  beforeAll(async () => {
    stack = await startMiniStack({
      hosts: [
        { name: 'rm-a', ttlSeconds: 2 },
        { name: 'rm-b' },
        // Offline from the start: its agent holds no etcd lease.
        { name: 'rm-c', liveness: false },
      ],
    });
    await createRunningServer(stack, { name: 'rm-vm', host: 'rm-a', memoryMb: 512, dirtyRateMibs: 1 });
  });
  afterAll(async () => stack?.stop());

  it('is for admins only: an operator gets a 403 and the host stays', async () => {
    const made = await stack.api<{ token: string }>('POST', '/v1/tokens', {
      name: 'rm-ops',
      role: 'operator',
    });
    expect(made.status).toBe(201);
    const refused = await call('DELETE', '/v1/hosts/rm-c', made.body.token);
    expect(refused.status).toBe(403);
    expect((await stack.api('GET', '/v1/hosts/rm-c')).status).toBe(200);
  });

  it('refuses a host with guests, naming them (and that it is online)', async () => {
    const refused = await removeHost('rm-a');
    expect(refused.status).toBe(409);
    expect(refused.body.error?.message).toMatch(/guests are assigned to it \(rm-vm\)/);
    expect(refused.body.error?.blockers).toEqual([{ kind: 'online' }, { kind: 'guests', guests: ['rm-vm'] }]);
    expect((await stack.api('GET', '/v1/hosts/rm-a')).status).toBe(200);

    const viaCli = await vmctl('host-delete', 'rm-a').catch((err: { code: number; stderr: string }) => err);
    expect(viaCli).toMatchObject({ code: 1 });
    expect((viaCli as { stderr: string }).stderr).toContain('guests are assigned to it (rm-vm)');
  });

  it('removes an empty offline host; its name and id then enrol again, with a credential the old one is not', async () => {
    const facts = await factsOf('rm-c');
    const oldCredential = stack.agentCredential('rm-c');
    // Test agents register with the admin token: a running one would put its row back at its next refresh.
    await stack.agents.get('rm-c')!.stop();
    // Before: a reinstalled host (a new id) under the same name is a 409.
    const reinstalled = { ...facts, hostId: randomUUID(), agentUrl: 'http://127.0.0.1:9' };
    expect((await stack.api('POST', '/v1/hosts/register', reinstalled)).status).toBe(409);

    const removed = await removeHost('rm-c');
    expect(removed.status, JSON.stringify(removed.body)).toBe(200);
    expect(removed.body.removed).toEqual({ id: facts.hostId, name: 'rm-c' });
    expect((await stack.api('GET', '/v1/hosts/rm-c')).status).toBe(404);
    const events = await stack.db.db.execute(
      sql`select count(*)::int as n from events where subject_kind = 'host' and subject_id = ${facts.hostId}`,
    );
    expect(events.rows).toEqual([{ n: 0 }]);
    // Its credential went with the row.
    expect((await call('POST', '/v1/hosts/register', oldCredential, facts)).status).toBe(401);

    // The same id enrols again (a token for its name), and gets a new credential: the old one stays revoked.
    const token = await stack.api<{ token: string }>('POST', '/v1/enrolment-tokens', { host: 'rm-c' });
    const enrolled = await fetch(`${stack.apiUrl}/v1/hosts/enrol`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token.body.token}`, 'content-type': 'application/json' },
      body: JSON.stringify(facts),
    });
    expect(enrolled.status).toBe(200);
    const { credential } = (await enrolled.json()) as { credential: string };
    expect(credential).not.toBe(oldCredential);
    expect((await call('POST', '/v1/hosts/register', credential, facts)).status).toBe(200);
    expect((await call('POST', '/v1/hosts/register', oldCredential, facts)).status).toBe(401);
  });

  it('keeps the finished migrations of a removed host, naming it; a new host id then registers under its name', async () => {
    const started = await liveMigrate(stack, 'rm-vm', { prefer_host: 'rm-b' });
    expect(started.status, JSON.stringify(started.body)).toBe(202);
    const done = await waitForPhase(stack, started.body.id, ['completed', 'failed']);
    expect(done.phase, done.error ?? '').toBe('completed');

    const idOfA = await hostIdOf('rm-a');
    await stack.agents.get('rm-a')!.stop();
    await waitFor('rm-a to lose its lease', async () => {
      const host = await stack.api<{ status: string }>('GET', '/v1/hosts/rm-a');
      return host.body.status === 'offline' ? true : null;
    });
    const removed = await vmctl('host-delete', 'rm-a');
    expect(removed.stdout).toContain(`host 'rm-a' (${idOfA}) removed`);
    expect((await stack.api('GET', '/v1/hosts/rm-a')).status).toBe(404);

    const history = (await migrationOf(stack, started.body.id)) as unknown as {
      phase: string;
      source: { id: string; name: string | null };
    };
    expect(history.phase).toBe('completed');
    expect(history.source).toEqual({ id: idOfA, name: 'rm-a' });

    const facts = await factsOf('rm-b');
    const reinstalled = { ...facts, hostId: randomUUID(), name: 'rm-a', agentUrl: 'http://127.0.0.1:9' };
    const registered = await stack.api<{ id: string; name: string }>(
      'POST',
      '/v1/hosts/register',
      reinstalled,
    );
    expect(registered.status, JSON.stringify(registered.body)).toBe(200);
    expect(registered.body).toMatchObject({ id: reinstalled.hostId, name: 'rm-a' });
  });
});
