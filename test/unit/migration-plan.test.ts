import { describe, expect, it } from 'vitest';
import { novaDefault } from '../../domain/convergence/policies.ts';
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
      migrationPolicySchema.parse({ name: 'p', selectors: {}, encryption: false }),
    );
    const plan = planLiveMigration(
      plain,
      { ...options, maxBandwidthMb: 30, enableTls: true, quicklyFinish: true },
      guest,
    );
    expect(plan.start.bandwidthBytes).toBe(30 * 2 ** 20);
    expect(plan.tls).toBe(true);
    // quickly_finish composes with the selected policy (our predictive default) instead of replacing it.
    expect(plan.convergencePolicy).toEqual(plain.convergencePolicy);
    expect(plan.startContext.quicklyFinish).toBe(true);
    expect(plan.start.autoConverge).toBe(true);
    expect(plan.notes).toHaveLength(3);
    expect(plan.notes).toContain(
      "quickly_finish adds Cloudpods' quickly-finish on top of the 'predictive' policy",
    );
  });

  it('quickly_finish keeps an operator schedule and turns auto-converge on, which it needs', () => {
    const schedule = resolveSettings(
      DEFAULT_MIGRATION_CONFIG,
      migrationPolicySchema.parse({
        name: 's',
        selectors: {},
        convergence: 'schedule',
        schedule: [{ afterPass: 2, action: 'abort' }],
      }),
    );
    const withoutOption = planLiveMigration(schedule, options, guest);
    const plan = planLiveMigration(schedule, { ...options, quicklyFinish: true }, guest);
    expect(plan.convergencePolicy).toEqual(withoutOption.convergencePolicy);
    expect(plan.startContext.quicklyFinish).toBe(true);
    expect(plan.start).toMatchObject({ autoConverge: true });
    expect(withoutOption.start.autoConverge).toBe(false);
    expect(withoutOption.startContext.quicklyFinish).toBeUndefined();
  });

  it("under a policy that never enables auto-converge (Nova's), quickly_finish turns it on with Cloudpods' throttle", () => {
    const nova = { ...settings, convergencePolicy: novaDefault };
    expect(planLiveMigration(nova, options, guest).start.autoConverge).toBe(false);
    expect(planLiveMigration(nova, { ...options, quicklyFinish: true }, guest).start).toMatchObject({
      autoConverge: true,
      cpuThrottleInitial: 60,
      cpuThrottleIncrement: 20,
    });
  });

  it("hands the settings' completionTimeoutPerGiB to the engine as its deadline, 0 included", () => {
    expect(planLiveMigration(settings, options, guest).startContext.completionTimeoutPerGiB).toBe(150);
    const off = resolveSettings({ ...DEFAULT_MIGRATION_CONFIG, completionTimeoutPerGiB: 0 }, null);
    expect(planLiveMigration(off, options, guest).startContext.completionTimeoutPerGiB).toBe(0);
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

  it("takes the queue timeout from the settings, in ms: the cluster's, a stored policy's ignored (cluster-wide)", () => {
    const cluster = resolveSettings({ ...DEFAULT_MIGRATION_CONFIG, queueTimeout: 90 }, null);
    expect(planLiveMigration(cluster, options, guest).queueTimeoutMs).toBe(90_000);
    // A policy stored before queueTimeout became cluster-wide (the API now refuses it).
    const policy = migrationPolicySchema.parse({ name: 'patient', selectors: {} });
    const legacy = { ...policy, overrides: { queueTimeout: 7200 } } as unknown as typeof policy;
    const resolved = resolveSettings({ ...DEFAULT_MIGRATION_CONFIG, queueTimeout: 90 }, legacy);
    expect(resolved.sources.queueTimeout).toBe('cluster-default');
    expect(planLiveMigration(resolved, options, guest).queueTimeoutMs).toBe(90_000);
  });
});
