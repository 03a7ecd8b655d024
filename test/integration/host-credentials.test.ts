import { randomUUID } from 'node:crypto';
import { stat } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { HostFacts } from '../../domain/agent-contract.ts';
import { startMiniStack, type MiniStack } from '../helpers/mini-stack.ts';
import { createRunningServer, liveMigrate, waitForPhase } from '../helpers/migrations.ts';

interface ErrorBody {
  error: { code: string; message: string };
}

describe('per-host credentials: enrolment, registration, worker → agent, agent ↔ agent', () => {
  let stack: MiniStack;
  let facts: HostFacts;

  const call = async (url: string, method: string, token: string, body?: unknown) => {
    const res = await fetch(url, {
      method,
      headers: {
        authorization: `Bearer ${token}`,
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    return {
      status: res.status,
      body: (text ? JSON.parse(text) : null) as ErrorBody & Record<string, unknown>,
    };
  };
  const enrolmentToken = async (body: Record<string, unknown> = {}) => {
    const made = await stack.api<{ token: string }>('POST', '/v1/enrolment-tokens', body);
    expect(made.status).toBe(201);
    expect(made.body.token).toMatch(/^vme_/);
    return made.body.token;
  };
  /** Registers host `body` with the API as its agent does, on `credential`. */
  const registerHost = (credential: string, body: unknown) =>
    call(`${stack.apiUrl}/v1/hosts/register`, 'POST', credential, body);
  const agentUrl = (name: string) => stack.agents.get(name)!.url;

  beforeAll(async () => {
    // Both hosts enrol for real: a one-time token each, traded by the agent for its own credential.
    stack = await startMiniStack({
      hosts: [
        { name: 'enr-a', enrol: true },
        { name: 'enr-b', enrol: true },
      ],
    });
    facts = (await call(`${agentUrl('enr-a')}/v1/facts`, 'GET', stack.agentCredential('enr-a')))
      .body as never;
  });
  afterAll(async () => stack?.stop());

  it('stores the credential enrolment answered in <agent dir>/credential, mode 0600', async () => {
    const file = path.join(stack.dir, 'agents', 'enr-a', 'credential');
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    expect(stack.agentCredential('enr-a')).toMatch(/^vmh_/);
    expect(stack.agentCredential('enr-a')).not.toBe(stack.agentCredential('enr-b'));
  });

  it('takes an enrolment token once, and never once expired', async () => {
    const token = await enrolmentToken({ name: 'one-shot' });
    const newHost = { ...facts, hostId: randomUUID(), name: 'enr-new', agentUrl: 'http://127.0.0.1:9' };
    const first = await call(`${stack.apiUrl}/v1/hosts/enrol`, 'POST', token, newHost);
    expect(first.status).toBe(200);
    expect(first.body.credential).toMatch(/^vmh_/);
    const second = await call(`${stack.apiUrl}/v1/hosts/enrol`, 'POST', token, {
      ...newHost,
      hostId: randomUUID(),
      name: 'enr-new2',
    });
    expect(second.status).toBe(401);
    expect(second.body.error.message).toMatch(/already used/);

    const short = await enrolmentToken({ expires_in: 1 });
    await new Promise((resolve) => setTimeout(resolve, 1_200));
    const expired = await call(`${stack.apiUrl}/v1/hosts/enrol`, 'POST', short, {
      ...newHost,
      hostId: randomUUID(),
      name: 'enr-late',
    });
    expect(expired.status).toBe(401);
    expect(expired.body.error.message).toMatch(/expired/);

    // An enrolled host id is taken again only with a token made for that host's name.
    const unbound = await enrolmentToken();
    const retake = await call(`${stack.apiUrl}/v1/hosts/enrol`, 'POST', unbound, facts);
    expect(retake.status).toBe(403);
    expect(retake.body.error.message).toMatch(/--host enr-a/);
    // A token made for its name re-enrols it: a new generation, the old credential revoked.
    const again = await call(
      `${stack.apiUrl}/v1/hosts/enrol`,
      'POST',
      await enrolmentToken({ host: 'enr-new' }),
      newHost,
    );
    expect(again.status).toBe(200);
    expect(again.body.credential).not.toBe(first.body.credential);
    const oldOne = await registerHost(first.body.credential as string, newHost);
    expect(oldOne.status).toBe(401);
    const newOne = await registerHost(again.body.credential as string, newHost);
    expect(newOne.status).toBe(200);

    // Another host's agent URL is refused: the workers would not know whose credential to send there.
    const urlTaken = await call(`${stack.apiUrl}/v1/hosts/enrol`, 'POST', await enrolmentToken(), {
      ...newHost,
      hostId: randomUUID(),
      name: 'enr-copycat',
      agentUrl: facts.agentUrl,
    });
    expect(urlTaken.status).toBe(409);
    // Neither an admin token nor a host credential enrols.
    expect((await call(`${stack.apiUrl}/v1/hosts/enrol`, 'POST', stack.apiToken, facts)).status).toBe(401);
    // The enrolment token is no API token.
    expect((await call(`${stack.apiUrl}/v1/hosts`, 'GET', unbound)).status).toBe(401);
  });

  it('lets the worker call each agent with its own credential: a live migration between enrolled hosts completes', async () => {
    await createRunningServer(stack, { name: 'cred-vm', host: 'enr-a', memoryMb: 1024, dirtyRateMibs: 1 });
    const started = await liveMigrate(stack, 'cred-vm');
    expect(started.status).toBe(202);
    const done = await waitForPhase(stack, started.body.id, ['completed', 'failed']);
    expect(done.error).toBeNull();
    expect(done.phase).toBe('completed');
  });

  it('lets a host credential register itself only, at its agent URL, and call nothing else', async () => {
    const own = stack.agentCredential('enr-a');
    const register = (body: unknown) => registerHost(own, body);
    expect((await register(facts)).status).toBe(200);

    const b = (await call(`${agentUrl('enr-b')}/v1/facts`, 'GET', stack.agentCredential('enr-b'))).body;
    const asB = await register(b);
    expect(asB.status).toBe(403);
    expect(asB.body.error.message).toMatch(/not /);

    const moved = await register({ ...facts, agentUrl: 'http://203.0.113.9:7000' });
    expect(moved.status).toBe(403);
    expect(moved.body.error.message).toMatch(
      /changing agent_url needs an admin: PATCH \/v1\/hosts\/:id \{agent_url\}/,
    );

    for (const [method, route, body] of [
      ['GET', '/v1/hosts', undefined],
      ['GET', '/v1/servers', undefined],
      ['POST', '/v1/enrolment-tokens', {}],
      ['PATCH', `/v1/hosts/${facts.hostId}`, { agent_url: 'http://203.0.113.9:7000' }],
      ['POST', `/v1/hosts/${facts.hostId}/auto-migrate-on-host-down`, { auto_migrate_on_host_down: false }],
    ] as const) {
      const res = await call(`${stack.apiUrl}${route}`, method, own, body);
      expect(res.status, `${method} ${route}`).toBe(403);
    }

    // The admin may move it (and moves it back).
    const patched = await stack.api('PATCH', `/v1/hosts/${facts.hostId}`, {
      agent_url: 'http://127.0.0.1:10',
    });
    expect(patched.status).toBe(200);
    expect(patched.body.agentUrl).toBe('http://127.0.0.1:10');
    expect((await stack.api('PATCH', `/v1/hosts/enr-a`, { agent_url: facts.agentUrl })).status).toBe(200);
    expect((await stack.api('PATCH', `/v1/hosts/enr-a`, { agent_url: 'ftp://x' })).status).toBe(400);
    const b2 = agentUrl('enr-b');
    expect((await stack.api('PATCH', `/v1/hosts/enr-a`, { agent_url: b2 })).status).toBe(409);
  });

  it('sends the peer list only to an agent that does not hold its revision', async () => {
    const own = stack.agentCredential('enr-a');
    const first = await registerHost(own, facts);
    expect(first.status).toBe(200);
    const revision = first.body.peersRevision as string;
    expect(revision).toMatch(/^[\w-]{10,}$/);
    const listed = (first.body.peers as { name: string }[]).map((p) => p.name);
    expect(listed).toEqual(expect.arrayContaining(['enr-a', 'enr-b']));
    const again = await fetch(`${stack.apiUrl}/v1/hosts/register`, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${own}`,
        'content-type': 'application/json',
        'x-peers-revision': revision,
      },
      body: JSON.stringify(facts),
    });
    const held = (await again.json()) as Record<string, unknown>;
    expect(held.peersRevision).toBe(revision);
    expect(held).not.toHaveProperty('peers');
    const stale = await fetch(`${stack.apiUrl}/v1/hosts/register`, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${own}`,
        'content-type': 'application/json',
        'x-peers-revision': 'old',
      },
      body: JSON.stringify(facts),
    });
    expect(((await stale.json()) as { peers: unknown[] }).peers).toHaveLength(listed.length);
  });

  it('has each agent accept its own credential only; the peer token only on the peer routes', async () => {
    const a = agentUrl('enr-a');
    expect((await call(`${a}/v1/guests`, 'GET', stack.agentCredential('enr-a'))).status).toBe(200);
    expect((await call(`${a}/v1/guests`, 'GET', stack.agentCredential('enr-b'))).status).toBe(401);
    expect((await call(`${a}/v1/guests`, 'GET', 'an-old-fleet-agent-token')).status).toBe(401);
    expect((await call(`${a}/v1/guests`, 'GET', stack.apiToken)).status).toBe(401);

    const peer = stack.peerToken;
    for (const [method, route] of [
      ['GET', '/v1/guests'],
      ['GET', '/v1/facts'],
      ['PUT', '/v1/fencing'],
      ['POST', `/v1/guests/${randomUUID()}/stop`],
      ['GET', `/v1/guests/${randomUUID()}/migration`],
    ] as const) {
      const res = await call(`${a}${route}`, method, peer, method === 'PUT' ? { armed: false } : undefined);
      expect(res.status, `${method} ${route}`).toBe(403);
    }
    // The confirmation routes take it (the guest is unknown here: a 404, not a refusal).
    const incoming = await call(`${a}/v1/guests/${randomUUID()}/incoming`, 'GET', peer);
    expect([401, 403]).not.toContain(incoming.status);
  });

  it('keeps the enrolled credential across an agent restart, read from its file', async () => {
    const before = stack.agentCredential('enr-b');
    await stack.agents.get('enr-b')!.stop();
    const restarted = await stack.restartAgent('enr-b');
    expect(stack.agentCredential('enr-b')).toBe(before);
    expect((await call(`${restarted.url}/v1/guests`, 'GET', before)).status).toBe(200);
  });
});
