import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startMiniStack, type MiniStack } from '../helpers/mini-stack.ts';
import { createRunningServer } from '../helpers/migrations.ts';

interface ConfigBody {
  config: Record<string, number | boolean>;
  defaults: Record<string, number | boolean>;
}
interface ErrorBody {
  error: { field: string; message: string };
}
interface EffectiveBody {
  policy: string | null;
  explanation: string[];
  settings: {
    convergence: string;
    allowPostCopy: boolean;
    sources: Record<string, string>;
    tls: boolean;
    bandwidthMode: string;
    bandwidthBytes: number;
    notes: string[];
  };
}

describe('cluster migration config and label-selected policies', () => {
  let stack: MiniStack;

  beforeAll(async () => {
    stack = await startMiniStack({ hosts: [{ name: 'h1' }] });
    await createRunningServer(stack, {
      name: 'gold',
      host: 'h1',
      labels: { tier: 'gold' },
      projectLabels: { env: 'prod' },
    });
    await createRunningServer(stack, { name: 'plain', host: 'h1' });
  });
  afterAll(async () => stack?.stop());

  it('serves KubeVirt defaults, takes new values, and restores defaults for fields left out', async () => {
    const initial = await stack.api<ConfigBody>('GET', '/v1/migration-config');
    expect(initial.body.config).toEqual(initial.body.defaults);
    expect(initial.body.config).toMatchObject({
      bandwidthPerMigration: 0,
      completionTimeoutPerGiB: 150,
      parallelMigrationsPerCluster: 5,
      parallelOutboundMigrationsPerNode: 2,
      parallelInboundMigrationsPerNode: 2,
      progressTimeout: 150,
      allowPostCopy: false,
    });
    const set = await stack.api<ConfigBody>('PUT', '/v1/migration-config', {
      parallelMigrationsPerCluster: 3,
      bandwidthPerMigration: '64Mi',
      allowPostCopy: true,
    });
    expect(set.status).toBe(200);
    expect(set.body.config).toMatchObject({
      parallelMigrationsPerCluster: 3,
      bandwidthPerMigration: 64 * 2 ** 20,
    });
    expect((await stack.api<ConfigBody>('GET', '/v1/migration-config')).body.config.allowPostCopy).toBe(true);
    const reset = await stack.api<ConfigBody>('PUT', '/v1/migration-config', { allowPostCopy: true });
    expect(reset.body.config).toEqual({ ...reset.body.defaults, allowPostCopy: true });
    await stack.api('PUT', '/v1/migration-config', {});
  });

  it.each([
    [{ parallelMigrationsPerCluster: 0 }, 'parallelMigrationsPerCluster'],
    [{ bandwidthPerMigration: 'fast' }, 'bandwidthPerMigration'],
    [{ allowPostCopy: 'yes' }, 'allowPostCopy'],
    [{ turbo: true }, 'turbo'],
  ])('refuses %j with a 400 naming %s', async (body, field) => {
    const res = await stack.api<ErrorBody>('PUT', '/v1/migration-config', body);
    expect(res.status).toBe(400);
    expect(res.body.error.field).toBe(field);
    expect(res.body.error.message).toContain(field);
  });

  it('creates, lists, shows, updates and deletes policies; the one matching the most labels wins', async () => {
    const postCopy = {
      name: 'b-gold',
      selectors: { guestLabels: { tier: 'gold' } },
      convergence: 'post-copy',
      overrides: { allowPostCopy: true },
    };
    const prod = {
      name: 'z-gold-prod',
      selectors: { guestLabels: { tier: 'gold' }, projectLabels: { env: 'prod' } },
      convergence: 'suspend-workload',
    };
    const tie = {
      name: 'a-gold',
      selectors: { guestLabels: { tier: 'gold' } },
      convergence: 'minimal-downtime',
    };
    for (const p of [postCopy, prod, tie])
      expect((await stack.api('POST', '/v1/migration-policies', p)).status).toBe(201);
    expect((await stack.api('POST', '/v1/migration-policies', postCopy)).status).toBe(409);

    const listed = await stack.api<{ items: { name: string }[] }>('GET', '/v1/migration-policies');
    expect(listed.body.items.map((p) => p.name)).toEqual(['a-gold', 'b-gold', 'z-gold-prod']);

    const effective = await stack.api<EffectiveBody>('GET', '/v1/servers/gold/migration-policy');
    expect(effective.body.policy).toBe('z-gold-prod');
    expect(effective.body.settings.convergence).toBe('suspend-workload');
    expect(effective.body.explanation.join('\n')).toMatch(/z-gold-prod/);

    expect((await stack.api('DELETE', '/v1/migration-policies/z-gold-prod')).status).toBe(200);
    const tied = await stack.api<EffectiveBody>('GET', '/v1/servers/gold/migration-policy');
    expect(tied.body.policy).toBe('a-gold');

    const updated = await stack.api('PUT', '/v1/migration-policies/b-gold', {
      selectors: { guestLabels: { tier: 'gold' }, projectLabels: { env: 'prod' } },
      convergence: 'post-copy',
      overrides: { allowPostCopy: true },
    });
    expect(updated.status).toBe(200);
    const now = await stack.api<EffectiveBody>('GET', '/v1/servers/gold/migration-policy');
    expect(now.body.policy).toBe('b-gold');
    expect(now.body.settings.allowPostCopy).toBe(true);
    expect(now.body.settings.sources.allowPostCopy).toBe('policy:b-gold');

    const none = await stack.api<EffectiveBody>('GET', '/v1/servers/plain/migration-policy');
    expect(none.body.policy).toBeNull();
    expect(none.body.settings.sources.allowPostCopy).toBe('cluster-default');
  });

  it('sizes auto bandwidth from the link speed the source host reported', async () => {
    // h1 is a sim agent: its facts report its modelled 10 Gbit/s link, stored at registration.
    const auto = {
      name: 'a-auto',
      selectors: { guestLabels: { tier: 'gold' }, projectLabels: { env: 'prod' } },
    };
    expect((await stack.api('POST', '/v1/migration-policies', auto)).status).toBe(201);
    const effective = await stack.api<EffectiveBody>('GET', '/v1/servers/gold/migration-policy');
    expect(effective.body.policy).toBe('a-auto');
    expect(effective.body.settings.bandwidthMode).toBe('auto');
    // 90% of 10000 Mbit/s shared by the default 2 outbound migrations.
    expect(effective.body.settings.bandwidthBytes).toBe(562_500_000);
    expect(effective.body.settings.notes.join('\n')).toContain('auto, 90% of the 10000 Mbit/s link');
    expect((await stack.api('DELETE', '/v1/migration-policies/a-auto')).status).toBe(200);
  });

  it('names unknown policies and bad policy fields', async () => {
    expect((await stack.api('GET', '/v1/migration-policies/nope')).status).toBe(404);
    expect((await stack.api('DELETE', '/v1/migration-policies/nope')).status).toBe(404);
    const bad = await stack.api<ErrorBody>('POST', '/v1/migration-policies', {
      name: 'x',
      convergence: 'warp',
    });
    expect(bad.status).toBe(400);
    expect(bad.body.error.field).toBe('convergence');
    const noSchedule = await stack.api<ErrorBody>('POST', '/v1/migration-policies', {
      name: 'y',
      convergence: 'schedule',
    });
    expect(noSchedule.status).toBe(400);
    expect(noSchedule.body.error.field).toMatch(/^schedule/);
    // Parallel limits are the cluster's: a policy naming one would have replaced the cap for everyone.
    const limit = await stack.api<ErrorBody>('POST', '/v1/migration-policies', {
      name: 'z',
      selectors: { guestLabels: { tier: 'db' } },
      overrides: { parallelMigrationsPerCluster: 50 },
    });
    expect(limit.status).toBe(400);
    expect(limit.body.error.field).toBe('overrides.parallelMigrationsPerCluster');
    expect(limit.body.error.message).toContain('cluster-wide');
    expect((await stack.api('GET', '/v1/migration-policies/z')).status).toBe(404);
  });
});
