import { describe, expect, it } from 'vitest';
import { DEFAULT_MIGRATION_CONFIG } from '../../domain/migration-config.ts';
import { planLiveMigration } from '../../domain/migration-plan.ts';
import { migrationPolicySchema, resolveSettings } from '../../domain/migration-policy.ts';
import { DEFAULT_LIVE_MIGRATE_OPTIONS, type LiveMigrateOptions } from '../../domain/live-migration.ts';

const options: LiveMigrateOptions = DEFAULT_LIVE_MIGRATE_OPTIONS;
const guest = {
  memoryMb: 1024,
  disks: [{ id: 'd', sizeMb: 2048, storage: 'local' as const, cache: 'none' as const }],
};

describe('planLiveMigration', () => {
  const settings = resolveSettings(DEFAULT_MIGRATION_CONFIG, null);

  it('runs our predictive default under the cluster limits when nothing else is asked', () => {
    const plan = planLiveMigration(settings, options, guest);
    expect(plan.convergencePolicy.kind).toBe('predictive');
    expect(plan.limits).toEqual({ perCluster: 5, outboundPerNode: 2, inboundPerNode: 2 });
    expect(plan.queueTimeoutMs).toBe(3_600_000);
    expect(plan.tls).toBe(true);
    expect(plan.startContext).toMatchObject({ memoryBytes: 1024 * 2 ** 20, localDiskBytes: 2048 * 2 ** 20 });
    expect(plan.start.postCopy).toBe(false);
    expect(plan.notes).toEqual([]);
  });

  it('lets the request cap bandwidth, turn TLS on and ask for quickly-finish, and says so', () => {
    const plain = resolveSettings(
      DEFAULT_MIGRATION_CONFIG,
      migrationPolicySchema.parse({ name: 'p', encryption: false }),
    );
    const plan = planLiveMigration(
      plain,
      { ...options, maxBandwidthMb: 30, enableTls: true, quicklyFinish: true },
      guest,
    );
    expect(plan.start.bandwidthBytes).toBe(30 * 2 ** 20);
    expect(plan.tls).toBe(true);
    expect(plan.convergencePolicy.kind).toBe('cloudpods');
    expect(plan.start.autoConverge).toBe(true);
    expect(plan.notes).toHaveLength(3);
  });

  it('takes limits and post-copy from the settings', () => {
    const custom = resolveSettings(
      { ...DEFAULT_MIGRATION_CONFIG, parallelMigrationsPerCluster: 1, allowPostCopy: true },
      null,
    );
    const plan = planLiveMigration(custom, options, guest);
    expect(plan.limits.perCluster).toBe(1);
    expect(plan.startContext.postCopyAllowed).toBe(true);
  });

  it('takes the queue timeout from the settings, in ms, a policy override included', () => {
    const cluster = resolveSettings({ ...DEFAULT_MIGRATION_CONFIG, queueTimeout: 90 }, null);
    expect(planLiveMigration(cluster, options, guest).queueTimeoutMs).toBe(90_000);
    const policy = migrationPolicySchema.parse({ name: 'patient', overrides: { queueTimeout: 7200 } });
    const overridden = resolveSettings({ ...DEFAULT_MIGRATION_CONFIG, queueTimeout: 90 }, policy);
    expect(overridden.sources.queueTimeout).toBe('policy:patient');
    expect(planLiveMigration(overridden, options, guest).queueTimeoutMs).toBe(7_200_000);
  });
});
