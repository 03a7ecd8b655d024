import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startMiniStack, type MiniStack } from '../helpers/mini-stack.ts';
import { createRunningServer, migrateToEnd, waitForMigrationEnd } from '../helpers/migrations.ts';
import { waitFor } from '../helpers/wait.ts';

const run = promisify(execFile);

interface ServerLabels {
  labels: Record<string, string>;
}
interface EffectivePolicy {
  policy: string | null;
  settings: { convergence: string };
}
interface ErrorBody {
  error: { code: string; field?: string; message: string };
}

/** PATCH /v1/servers/:id: labels change after creation, and the next migration selects its policy by them. */
describe('guest labels set after creation', () => {
  let stack: MiniStack;

  beforeAll(async () => {
    stack = await startMiniStack({ hosts: [{ name: 'lb-src' }, { name: 'lb-dst' }] });
    await createRunningServer(stack, { name: 'lb-1', host: 'lb-src', memoryMb: 512, labels: { app: 'web' } });
    const policy = await stack.api('POST', '/v1/migration-policies', {
      name: 'lb-gold',
      selectors: { guestLabels: { tier: 'gold' } },
      convergence: 'minimal-downtime',
    });
    expect(policy.status).toBe(201);
  });
  afterAll(async () => stack?.stop());

  const vmctl = async (...args: string[]) =>
    (
      await run(process.execPath, [path.resolve('cli/bin.js'), ...args], {
        env: { ...process.env, VMCTL_API_URL: stack.apiUrl, API_TOKEN: stack.apiToken },
      })
    ).stdout;

  const effective = async () =>
    (await stack.api<EffectivePolicy>('GET', '/v1/servers/lb-1/migration-policy')).body;

  it('sets, replaces and removes labels, keeping the others', async () => {
    expect((await effective()).policy).toBeNull();
    const set = await stack.api<ServerLabels>('PATCH', '/v1/servers/lb-1', {
      labels: { tier: 'silver', zone: 'a' },
    });
    expect(set.status).toBe(200);
    expect(set.body.labels).toEqual({ app: 'web', tier: 'silver', zone: 'a' });
    const changed = await stack.api<ServerLabels>('PATCH', '/v1/servers/lb-1', {
      labels: { tier: 'gold', zone: null },
    });
    expect(changed.body.labels).toEqual({ app: 'web', tier: 'gold' });
    expect((await stack.api<ServerLabels>('GET', '/v1/servers/lb-1')).body.labels).toEqual({
      app: 'web',
      tier: 'gold',
    });
  });

  it('makes the policy selecting the new label apply to the next migration', async () => {
    expect(await effective()).toMatchObject({
      policy: 'lb-gold',
      settings: { convergence: 'minimal-downtime' },
    });
    const done = await migrateToEnd(stack, 'lb-1', { prefer_host: 'lb-dst' });
    expect(done.phase).toBe('completed');
    const resolved = (done as unknown as { resolvedPolicy: { convergence: string; explanation: string[] } })
      .resolvedPolicy;
    expect(resolved.convergence).toBe('minimal-downtime');
    expect(resolved.explanation.join(' ')).toContain('lb-gold');
  });

  it.each([
    [{ labels: { '': 'x' } }, 'labels.'],
    [{ labels: { tier: 'x'.repeat(64) } }, 'labels.tier'],
    [{ labels: { tier: 3 } }, 'labels.tier'],
    [{ name: 'renamed', labels: {} }, '(body)'],
    [{}, 'labels'],
  ])('refuses %j with a 400 naming %s', async (body, field) => {
    const res = await stack.api<ErrorBody>('PATCH', '/v1/servers/lb-1', body);
    expect(res.status).toBe(400);
    expect(res.body.error.field).toBe(field);
  });

  it('answers 404 for an unknown server', async () => {
    const res = await stack.api<ErrorBody>('PATCH', '/v1/servers/nope', { labels: { a: 'b' } });
    expect(res.status).toBe(404);
    expect(res.body.error.message).toBe("server 'nope' not found");
  });

  it('vmctl server-update sets and removes labels', async () => {
    expect(
      await vmctl('server-update', '--label', 'zone=b', '--label', 'rack=3', '--remove-label', 'app', 'lb-1'),
    ).toBe('server lb-1: labels rack=3, tier=gold, zone=b\n');
    const refused = await vmctl('server-update', 'lb-1').catch((err: { stderr: string }) => err);
    expect((refused as { stderr: string }).stderr).toContain('nothing to change');
  });

  it('vmctl reads the answers of lists, migrations and power actions as before', async () => {
    expect(await vmctl('server-list')).toMatch(/lb-1\s+running\s+lb-dst/);
    expect(await vmctl('host-list')).toMatch(/lb-src[\s\S]*lb-dst|lb-dst[\s\S]*lb-src/);
    expect(await vmctl('migration-list')).toContain('lb-1');
    expect(await vmctl('migration-policy-list')).toContain('lb-gold');
    expect(await vmctl('host-events', 'lb-src')).toContain('registered');

    const started = await vmctl('server-live-migrate', '--prefer-host', 'lb-src', 'lb-1');
    const match = /^migration (\S+) started to lb-src \(workflow live-migrate-\S+\)\n/.exec(started);
    expect(match, started).not.toBeNull();
    expect((await waitForMigrationEnd(stack, match?.[1] ?? '')).phase).toBe('completed');
    expect(await vmctl('migration-show', match?.[1] ?? '')).toContain('phase: completed');

    const guest = (await stack.api<{ id: string }>('GET', '/v1/servers/lb-1')).body;
    expect(await vmctl('server-stop', 'lb-1')).toBe(
      `stopping server lb-1 (workflow guest-power-lb-1-${guest.id}); server-show tells when it is ready\n`,
    );
    await waitFor('lb-1 ready', async () =>
      (await stack.api<{ status: string }>('GET', '/v1/servers/lb-1')).body.status === 'ready' ? true : null,
    );
    expect(await vmctl('server-stop', 'lb-1')).toBe('server lb-1 is already stopped\n');
    // Each vmctl is a node process: a dozen of them on two busy cores.
  }, 240_000);
});
