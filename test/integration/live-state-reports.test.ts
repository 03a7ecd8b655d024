import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startMiniStack, type MiniStack } from '../helpers/mini-stack.ts';
import { createRunningServer, type ServerBody } from '../helpers/migrations.ts';
import { waitFor } from '../helpers/wait.ts';

interface LiveView {
  agentReachable: boolean;
  status?: string;
  pid?: number | null;
  heartbeat?: { counter: number; at: string } | null;
  error?: string;
  lastReportAt: string | null;
}
type ServerWithLive = ServerBody & { live: LiveView | null };
interface HostBody {
  id: string;
  name: string;
  lastReportAt: string | null;
  reports: 'current' | 'late' | 'never';
}

describe('live state from the agents’ reports, never from a call to an agent', () => {
  let stack: MiniStack;
  let vm: ServerBody;

  beforeAll(async () => {
    stack = await startMiniStack({
      hosts: [
        { name: 'r1', driver: 'sim' },
        { name: 'r2', driver: 'sim' },
      ],
    });
    vm = await createRunningServer(stack, { name: 'reported', host: 'r1', memoryMb: 256 });
  });
  afterAll(async () => stack?.stop());

  it('shows what the host reported, and its heartbeat moving on', async () => {
    const first = await waitFor('a reported heartbeat', async () => {
      const server = (await stack.api<ServerWithLive>('GET', `/v1/servers/${vm.id}`)).body;
      return server.live?.agentReachable && server.live.heartbeat ? server.live : null;
    });
    expect(first.status).toBe('running');
    expect(new Date(first.lastReportAt!).getTime()).toBeGreaterThan(Date.now() - 60_000);
    await waitFor('a later heartbeat in a later report', async () => {
      const server = (await stack.api<ServerWithLive>('GET', `/v1/servers/${vm.id}`)).body;
      return (server.live?.heartbeat?.counter ?? 0) > first.heartbeat!.counter ? true : null;
    });
    const host = (await stack.api<HostBody>('GET', '/v1/hosts/r1')).body;
    expect(host.reports).toBe('current');
    expect(host.lastReportAt).not.toBeNull();
  });

  it('reports a change at once: a stopped guest shows stopped', async () => {
    expect((await stack.api('POST', `/v1/servers/${vm.id}/stop`)).status).toBe(202);
    await waitFor('the stop reported', async () => {
      const server = (await stack.api<ServerWithLive>('GET', `/v1/servers/${vm.id}`)).body;
      return server.status === 'ready' && server.live?.status === 'stopped' ? true : null;
    });
    expect((await stack.api('POST', `/v1/servers/${vm.id}/start`)).status).toBe(202);
    await waitFor('the start reported', async () => {
      const server = (await stack.api<ServerWithLive>('GET', `/v1/servers/${vm.id}`)).body;
      return server.live?.status === 'running' ? true : null;
    });
  });

  it('a host may report only itself; a malformed report names the field', async () => {
    const r1 = stack.agents.get('r1')!;
    const r2 = stack.agents.get('r2')!;
    const asR1 = { authorization: `Bearer ${stack.agentCredential('r1')}` };
    const body = { intervalS: 2, at: new Date().toISOString(), guests: [] };
    const other = await fetch(`${stack.apiUrl}/v1/hosts/${r2.hostId}/report`, {
      method: 'PUT',
      headers: { ...asR1, 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    expect(other.status).toBe(403);
    const bad = await fetch(`${stack.apiUrl}/v1/hosts/${r1.hostId}/report`, {
      method: 'PUT',
      headers: { ...asR1, 'content-type': 'application/json' },
      body: JSON.stringify({ ...body, intervalS: 'often' }),
    });
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { error: { field: string } }).error.field).toBe('intervalS');
    // An older report arriving late changes nothing the newer one wrote.
    const stale = await stack.api<{ guestRowsWritten: number; guestRowsRemoved: number }>(
      'PUT',
      `/v1/hosts/${r1.hostId}/report`,
      { intervalS: 2, at: new Date(Date.now() - 3_600_000).toISOString(), guests: [] },
    );
    expect(stale.body).toEqual({ guestRowsWritten: 0, guestRowsRemoved: 0 });
    const server = (await stack.api<ServerWithLive>('GET', `/v1/servers/${vm.id}`)).body;
    expect(server.live?.status).toBe('running');
  });

  it('answers without the agent: a host whose reports stopped is shown late, with its last report time', async () => {
    const agent = stack.agents.get('r1')!;
    // The guest stays where it is (left running), only the agent goes: no report comes any more.
    await agent.stop({ leaveGuests: true });
    // With its agent gone, only the last report can say the guest runs (a call would have failed).
    const listed = await stack.api<{ items: ServerWithLive[] }>('GET', '/v1/servers');
    expect(listed.body.items.find((s) => s.id === vm.id)?.live?.status).toBe('running');

    const late = await waitFor(
      'the reports to be late',
      async () => {
        const host = (await stack.api<HostBody>('GET', '/v1/hosts/r1')).body;
        return host.reports === 'late' ? host : null;
      },
      { timeoutMs: 30_000, intervalMs: 500 },
    );
    const server = (await stack.api<ServerWithLive>('GET', `/v1/servers/${vm.id}`)).body;
    expect(server.live).toEqual({
      agentReachable: false,
      error: `host r1 has not reported since ${late.lastReportAt}`,
      lastReportAt: late.lastReportAt,
    });
  });
});
