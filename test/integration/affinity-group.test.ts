import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startMiniStack, type MiniStack } from '../helpers/mini-stack.ts';
import { createRunningServer, liveMigrate, waitForPhase, type ServerBody } from '../helpers/migrations.ts';
import { waitFor } from '../helpers/wait.ts';

interface GroupBody {
  groupId: string;
  done: boolean;
  migrations: {
    server: string;
    trigger: string;
    phase: string;
    destination: string | null;
    error: string | null;
  }[];
}

describe('with_same_labels moves guests sharing affinity labels in one request', () => {
  let stack: MiniStack;

  beforeAll(async () => {
    stack = await startMiniStack({ hosts: [{ name: 'src' }, { name: 'dst' }] });
    await Promise.all([
      createRunningServer(stack, { name: 'db-1', host: 'src', labels: { 'affinity.app': 'db', tier: 'a' } }),
      createRunningServer(stack, { name: 'db-2', host: 'src', labels: { 'affinity.app': 'db' } }),
      createRunningServer(stack, { name: 'db-3', host: 'src', labels: { 'affinity.app': 'db', tier: 'b' } }),
      createRunningServer(stack, { name: 'web-1', host: 'src', labels: { 'affinity.app': 'web' } }),
      createRunningServer(stack, { name: 'loner', host: 'src', labels: { tier: 'a' } }),
      createRunningServer(stack, {
        name: 'cache-1',
        host: 'src',
        memoryMb: 1024,
        labels: { 'affinity.app': 'cache' },
      }),
      createRunningServer(stack, {
        name: 'cache-2',
        host: 'src',
        memoryMb: 1024,
        labels: { 'affinity.app': 'cache' },
      }),
    ]);
  });
  afterAll(async () => stack?.stop());

  it('runs one parent with a child migration per guest and reports each outcome', async () => {
    const res = await stack.api<{ groupId: string; migrations: { server: string; trigger: string }[] }>(
      'POST',
      '/v1/servers/db-1/live-migrate',
      { with_same_labels: true, prefer_host: 'dst' },
    );
    expect(res.status, JSON.stringify(res.body)).toBe(202);
    expect(res.body.migrations.map((m) => [m.server, m.trigger]).sort()).toEqual([
      ['db-1', 'manual'],
      ['db-2', 'affinity'],
      ['db-3', 'affinity'],
    ]);
    const group = await waitFor(
      'the group to finish',
      async () => {
        const g = await stack.api<GroupBody>('GET', `/v1/migrations/groups/${res.body.groupId}`);
        return g.body.done ? g.body : null;
      },
      { timeoutMs: 60_000 },
    );
    expect(group.migrations.map((m) => [m.server, m.phase, m.destination]).sort()).toEqual([
      ['db-1', 'completed', 'dst'],
      ['db-2', 'completed', 'dst'],
      ['db-3', 'completed', 'dst'],
    ]);
    const parent = await stack.temporal.workflow.getHandle(`live-migrate-group-${res.body.groupId}`).result();
    expect(parent.map((o: { outcome: string }) => o.outcome)).toEqual([
      'completed',
      'completed',
      'completed',
    ]);
    expect((await stack.api<ServerBody>('GET', '/v1/servers/web-1')).body.host.name).toBe('src');
  });

  it('children outlive a terminated parent: each is its own migration and runs to its end', async () => {
    const res = await stack.api<{ groupId: string; migrations: { server: string; id: string }[] }>(
      'POST',
      '/v1/servers/cache-1/live-migrate',
      // Slow enough that both children are still copying when the parent goes.
      { with_same_labels: true, prefer_host: 'dst', max_bandwidth_mb: 40 },
    );
    expect(res.status, JSON.stringify(res.body)).toBe(202);
    const ids = res.body.migrations.map((m) => m.id);
    expect(ids).toHaveLength(2);
    await Promise.all(ids.map((id) => waitForPhase(stack, id, ['copying'], 60_000)));

    await stack.temporal.workflow
      .getHandle(`live-migrate-group-${res.body.groupId}`)
      .terminate('operator terminated the group');

    const finished = await Promise.all(
      ids.map((id) => waitForPhase(stack, id, ['completed', 'failed', 'cancelled'], 90_000)),
    );
    expect(finished.map((m) => m.phase)).toEqual(['completed', 'completed']);
    for (const name of ['cache-1', 'cache-2']) {
      expect((await stack.api<ServerBody>('GET', `/v1/servers/${name}`)).body.host.name).toBe('dst');
    }
  });

  it('refuses a guest without affinity labels, naming the field', async () => {
    const res = await liveMigrate(stack, 'loner', { with_same_labels: true });
    expect(res.status).toBe(400);
    expect(res.body.error?.field).toBe('with_same_labels');
    expect(res.body.error?.message).toContain('affinity.');
  });
});
