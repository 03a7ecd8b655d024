import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startMiniStack, type MiniStack } from '../helpers/mini-stack.ts';
import { waitFor } from '../helpers/wait.ts';
import { apiAllPages } from '../../cli/api-client.ts';

interface HostView {
  id: string;
  name: string;
  status: string;
  cpuModel: string;
  qemuVersion: string;
  driver: string;
}
interface ServerView {
  id: string;
  name: string;
  status: string;
  host: { id: string; name: string };
  live: { agentReachable: boolean; status: string; heartbeat: { counter: number } | null } | null;
}

describe('API over the real stack (sim hosts)', () => {
  let stack: MiniStack;

  beforeAll(async () => {
    stack = await startMiniStack({
      hosts: [
        { name: 'h-a', sim: { cpuModel: 'Test CPU A' } },
        { name: 'h-b' },
        { name: 'h-off', liveness: false },
      ],
    });
  });
  afterAll(async () => stack?.stop());

  it('answers /healthz without a token', async () => {
    const res = await fetch(`${stack.apiUrl}/healthz`);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ status: 'ok' });
  });

  it('refuses a missing or wrong token with a JSON 401', async () => {
    const none = await fetch(`${stack.apiUrl}/v1/hosts`);
    expect(none.status).toBe(401);
    expect(await none.json()).toMatchObject({ error: { code: 'unauthorized' } });
    expect((await stack.api('GET', '/v1/hosts', undefined, 'wrong')).status).toBe(401);
  });

  it('lists the hosts agents registered, with their facts and lease status', async () => {
    const res = await stack.api<{ items: HostView[] }>('GET', '/v1/hosts');
    expect(res.status).toBe(200);
    const byName = new Map(res.body.items.map((h) => [h.name, h]));
    expect(byName.get('h-a')).toMatchObject({ status: 'online', cpuModel: 'Test CPU A', driver: 'sim' });
    expect(byName.get('h-b')?.status).toBe('online');
    expect(byName.get('h-off')?.status).toBe('offline');
    const one = await stack.api<HostView>('GET', `/v1/hosts/${byName.get('h-b')?.id}`);
    expect(one.body.name).toBe('h-b');
    expect((await stack.api<HostView>('GET', '/v1/hosts/h-a')).body.cpuModel).toBe('Test CPU A');
  });

  it('names an unknown host or server in a 404', async () => {
    const host = await stack.api('GET', '/v1/hosts/nope');
    expect(host.status).toBe(404);
    expect(host.body).toMatchObject({ error: { message: "host 'nope' not found" } });
    const server = await stack.api('GET', '/v1/servers/00000000-0000-0000-0000-000000000000');
    expect(server.status).toBe(404);
    expect(server.body).toMatchObject({
      error: { message: "server '00000000-0000-0000-0000-000000000000' not found" },
    });
  });

  it('creates and starts a server through the workflow, with an advancing heartbeat', async () => {
    const created = await stack.api<ServerView>('POST', '/v1/servers', {
      name: 'vm1',
      host: 'h-a',
      memoryMb: 512,
      disks: [{ id: 'disk0', sizeMb: 64, storage: 'shared', cache: 'none' }],
      networks: [{ name: 'default', mac: '52:54:00:00:00:01' }],
    });
    expect(created.status).toBe(202);
    expect(created.body).toMatchObject({ name: 'vm1', status: 'creating', host: { name: 'h-a' } });
    const running = await waitFor('vm1 running', async () => {
      const res = await stack.api<ServerView>('GET', '/v1/servers/vm1');
      return res.body.status === 'running' && res.body.live?.heartbeat ? res.body : null;
    });
    const first = running.live?.heartbeat?.counter ?? 0;
    await waitFor('heartbeat advances', async () => {
      const res = await stack.api<{ items: ServerView[] }>('GET', '/v1/servers');
      const vm = res.body.items.find((s) => s.name === 'vm1');
      return (vm?.live?.heartbeat?.counter ?? 0) > first;
    });
    const filtered = await stack.api<{ items: ServerView[] }>('GET', '/v1/servers?host=h-b');
    expect(filtered.body.items).toEqual([]);
  });

  it('rejects bad bodies with a 400 naming the field, and loses nothing', async () => {
    const before = await stack.api<{ items: ServerView[] }>('GET', '/v1/servers');
    const cases: [unknown, string][] = [
      [{ name: 'vm2', host: 'h-a', vcpus: 0 }, 'vcpus'],
      [{ name: 'vm2', host: 'h-a', memoryMb: 'big' }, 'memoryMb'],
      [{ name: 'vm2' }, 'host'],
      [{ name: 'vm2', host: 'nope' }, 'host'],
      [{ name: 'vm2', host: 'h-a', networks: [{ name: 'default', mac: 'zz' }] }, 'networks.0.mac'],
    ];
    for (const [body, field] of cases) {
      const res = await stack.api<{ error: { field: string; message: string } }>('POST', '/v1/servers', body);
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect(res.body.error.field).toBe(field);
      expect(res.body.error.message).toContain(field);
    }
    const notJson = await fetch(`${stack.apiUrl}/v1/servers`, {
      method: 'POST',
      headers: { authorization: `Bearer ${stack.apiToken}`, 'content-type': 'application/json' },
      body: '{oops',
    });
    expect(notJson.status).toBe(400);
    const after = await stack.api<{ items: ServerView[] }>('GET', '/v1/servers');
    expect(after.body.items.length).toBe(before.body.items.length);
  });

  it('refuses a duplicate name and an offline host with 409', async () => {
    const dup = await stack.api('POST', '/v1/servers', { name: 'vm1', host: 'h-b' });
    expect(dup.status).toBe(409);
    expect(dup.body).toMatchObject({ error: { field: 'name' } });
    const offline = await stack.api('POST', '/v1/servers', { name: 'vm3', host: 'h-off' });
    expect(offline.status).toBe(409);
    expect(offline.body).toMatchObject({ error: { code: 'host_offline' } });
  });

  it('pages the servers by name with an opaque cursor, and vmctl follows the cursors', async () => {
    for (const name of ['pg-c', 'pg-a', 'pg-e', 'pg-b', 'pg-d']) {
      expect((await stack.api('POST', '/v1/servers', { name, host: 'h-b' })).status).toBe(202);
    }
    const all = (await stack.api<{ items: ServerView[] }>('GET', '/v1/servers?host=h-b')).body.items;
    expect(all.map((s) => s.name)).toEqual(['pg-a', 'pg-b', 'pg-c', 'pg-d', 'pg-e']);

    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const qs: string = `?host=h-b&limit=2${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`;
      const page = await stack.api<{ items: ServerView[]; next_cursor: string | null }>(
        'GET',
        `/v1/servers${qs}`,
      );
      expect(page.status).toBe(200);
      expect(page.body.items.length).toBeLessThanOrEqual(2);
      seen.push(...page.body.items.map((s) => s.name));
      cursor = page.body.next_cursor;
      pages++;
    } while (cursor !== null);
    expect(seen).toEqual(['pg-a', 'pg-b', 'pg-c', 'pg-d', 'pg-e']);
    expect(pages).toBe(3);

    // A server added before the cursor's position does not shift the next page (keyset, not offset).
    const first = await stack.api<{ next_cursor: string }>('GET', '/v1/servers?host=h-b&limit=2');
    expect((await stack.api('POST', '/v1/servers', { name: 'pg-0', host: 'h-b' })).status).toBe(202);
    const second = await stack.api<{ items: ServerView[] }>(
      'GET',
      `/v1/servers?host=h-b&limit=2&cursor=${encodeURIComponent(first.body.next_cursor)}`,
    );
    expect(second.body.items.map((s) => s.name)).toEqual(['pg-c', 'pg-d']);

    const conn = { baseUrl: stack.apiUrl, token: stack.apiToken };
    const listed = await apiAllPages<ServerView>(
      conn,
      '/v1/servers',
      new URLSearchParams({ host: 'h-b', limit: '2' }),
    );
    expect(listed.map((s) => s.name)).toEqual(['pg-0', 'pg-a', 'pg-b', 'pg-c', 'pg-d', 'pg-e']);

    const badCursor = await stack.api<{ error: { field: string; message: string } }>(
      'GET',
      '/v1/servers?cursor=nonsense',
    );
    expect(badCursor.status).toBe(400);
    expect(badCursor.body.error.field).toBe('cursor');
    const badLimit = await stack.api<{ error: { field: string } }>('GET', '/v1/servers?limit=0');
    expect(badLimit.status).toBe(400);
    expect(badLimit.body.error.field).toBe('limit');
  });
});
