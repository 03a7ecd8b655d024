import { describe, expect, it } from 'vitest';
import {
  clusterWideFields,
  completionDeadlineSeconds,
  configFromRequest,
  DEFAULT_MIGRATION_CONFIG,
  migrationConfigFields,
  migrationConfigFieldSchemas,
  migrationConfigOverridesSchema,
  migrationConfigRequestSchema,
  migrationOverrideFields,
  migrationDataGigabytes,
  MigrationSettingsError,
  parseQuantity,
  storedOverrides,
  workloadDisruptionAllowed,
} from '../../domain/migration-config.ts';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

function rejection(body: unknown): MigrationSettingsError {
  try {
    configFromRequest(body);
  } catch (err) {
    if (err instanceof MigrationSettingsError) return err;
    throw err;
  }
  throw new Error(`accepted ${JSON.stringify(body)}`);
}

describe('cluster migration config defaults', () => {
  it("are KubeVirt's, with Cloudpods' 300 ms downtime and nothing disruptive allowed", () => {
    // allowWorkloadDisruption is unset: it follows allowPostCopy (KubeVirt, below).
    expect(Object.hasOwn(DEFAULT_MIGRATION_CONFIG, 'allowWorkloadDisruption')).toBe(false);
    expect(DEFAULT_MIGRATION_CONFIG).toStrictEqual({
      bandwidthPerMigration: 0,
      completionTimeoutPerGiB: 150,
      parallelMigrationsPerCluster: 5,
      parallelOutboundMigrationsPerNode: 2,
      parallelInboundMigrationsPerNode: 2,
      progressTimeout: 150,
      allowPostCopy: false,
      allowAutoConverge: false,
      maxDowntimeMs: 300,
      queueTimeout: 3600,
      resiliencePolicy: 'all',
    });
    expect(Object.isFrozen(DEFAULT_MIGRATION_CONFIG)).toBe(true);
  });

  it('an empty body is the full default config', () => {
    expect(configFromRequest({})).toEqual(DEFAULT_MIGRATION_CONFIG);
    expect(configFromRequest(undefined)).toEqual(DEFAULT_MIGRATION_CONFIG);
  });

  it('a field left out restores its default, the others are kept', () => {
    const first = configFromRequest({
      progressTimeout: 300,
      allowPostCopy: true,
      parallelMigrationsPerCluster: 9,
    });
    expect(first).toMatchObject({
      progressTimeout: 300,
      allowPostCopy: true,
      parallelMigrationsPerCluster: 9,
    });
    // The next PUT leaves progressTimeout out: back to 150, as removing the key in KubeVirt's CR does.
    const second = configFromRequest({ allowPostCopy: true, parallelMigrationsPerCluster: 9 });
    expect(second.progressTimeout).toBe(150);
    expect(second).toEqual({
      ...DEFAULT_MIGRATION_CONFIG,
      allowPostCopy: true,
      parallelMigrationsPerCluster: 9,
    });
  });

  it('null also restores the default', () => {
    expect(configFromRequest({ maxDowntimeMs: null, bandwidthPerMigration: null })).toEqual(
      DEFAULT_MIGRATION_CONFIG,
    );
  });

  it('accepts the seed example (64Mi, 800 s/GiB, 5, 2, 150, no post-copy)', () => {
    expect(
      configFromRequest({
        bandwidthPerMigration: '64Mi',
        completionTimeoutPerGiB: 800,
        parallelMigrationsPerCluster: 5,
        parallelOutboundMigrationsPerNode: 2,
        progressTimeout: 150,
        allowPostCopy: false,
      }),
    ).toEqual({ ...DEFAULT_MIGRATION_CONFIG, bandwidthPerMigration: 64 * MiB, completionTimeoutPerGiB: 800 });
  });

  it('0 disables the deadline and the progress timeout, as in KubeVirt', () => {
    expect(configFromRequest({ completionTimeoutPerGiB: 0, progressTimeout: 0 })).toMatchObject({
      completionTimeoutPerGiB: 0,
      progressTimeout: 0,
    });
  });
});

describe('bandwidth quantities', () => {
  it.each([
    [0, 0],
    ['0', 0],
    ['0Mi', 0],
    [1000, 1000],
    ['1000', 1000],
    ['64Mi', 64 * MiB],
    ['2048Mi', 2048 * MiB],
    ['1Gi', GiB],
    ['1.5Gi', 1.5 * GiB],
    ['500M', 500_000_000],
    ['100k', 100_000],
    ['1Ki', 1024],
    ['0.5Ki', 512],
    ['1.0001Ki', 1025],
    ['1G', 1_000_000_000],
    [' 8Mi ', 8 * MiB],
  ])('%j is %d bytes/s', (value, bytes) => {
    expect(parseQuantity(value)).toBe(bytes);
    expect(configFromRequest({ bandwidthPerMigration: value }).bandwidthPerMigration).toBe(bytes);
  });

  it.each([['64MB'], ['64mi'], ['-1'], [-5], [1.5], ['abc'], [''], ['1e3'], ['5m'], [true], [null], [{}]])(
    '%j is not a quantity',
    (value) => {
      expect(parseQuantity(value)).toBeNull();
    },
  );

  it.each([['64MB'], ['-1'], [-5], [1.5], ['abc'], [true], [[64]]])(
    'rejects bandwidthPerMigration %j naming the field and the expected form',
    (value) => {
      const err = rejection({ bandwidthPerMigration: value });
      expect(err.field).toBe('bandwidthPerMigration');
      expect(err.message).toMatch(
        /^bandwidthPerMigration: a number of bytes per second, or a quantity like "64Mi"/,
      );
    },
  );
});

describe('invalid config values are rejected naming the field', () => {
  it.each([
    [{ completionTimeoutPerGiB: -1 }, 'completionTimeoutPerGiB', /at least 0/],
    [{ completionTimeoutPerGiB: '150' }, 'completionTimeoutPerGiB', /whole number of seconds per GiB/],
    [{ completionTimeoutPerGiB: 1.5 }, 'completionTimeoutPerGiB', /whole number/],
    [{ parallelMigrationsPerCluster: 0 }, 'parallelMigrationsPerCluster', /at least 1/],
    [{ parallelOutboundMigrationsPerNode: 0 }, 'parallelOutboundMigrationsPerNode', /at least 1/],
    [{ parallelInboundMigrationsPerNode: 2.5 }, 'parallelInboundMigrationsPerNode', /whole number/],
    [{ progressTimeout: -3 }, 'progressTimeout', /at least 0/],
    [{ allowPostCopy: 'yes' }, 'allowPostCopy', /true or false/],
    [{ allowAutoConverge: 1 }, 'allowAutoConverge', /true or false/],
    [{ allowWorkloadDisruption: 'no' }, 'allowWorkloadDisruption', /true or false/],
    [{ maxDowntimeMs: 0 }, 'maxDowntimeMs', /at least 1/],
    [{ maxDowntimeMs: 3_000_000 }, 'maxDowntimeMs', /at most 2000000/],
    [{ queueTimeout: 0 }, 'queueTimeout', /at least 1/],
    [{ queueTimeout: -60 }, 'queueTimeout', /at least 1/],
    [{ queueTimeout: 90.5 }, 'queueTimeout', /whole number of seconds a migration may wait for a slot/],
    [{ queueTimeout: '3600' }, 'queueTimeout', /whole number of seconds/],
    [{ queueTimeout: 30 * 86_400 + 1 }, 'queueTimeout', /at most 2592000/],
    [{ resiliencePolicy: 'some' }, 'resiliencePolicy', /one of all, ha-only, none/],
    [{ resiliencePolicy: 'HA_ONLY' }, 'resiliencePolicy', /one of all, ha-only, none/],
    [{ resiliencePolicy: true }, 'resiliencePolicy', /one of all, ha-only, none/],
  ])('%j', (body, field, message) => {
    const err = rejection(body);
    expect(err.field).toBe(field);
    expect(err.message.startsWith(`${field}: `)).toBe(true);
    expect(err.message).toMatch(message);
  });

  it("takes queueTimeout (ours, not KubeVirt's) from 1 s to 30 days; left out it is an hour", () => {
    expect(configFromRequest({ queueTimeout: 1 }).queueTimeout).toBe(1);
    expect(configFromRequest({ queueTimeout: 30 * 86_400 }).queueTimeout).toBe(30 * 86_400);
    expect(configFromRequest({ queueTimeout: null }).queueTimeout).toBe(3600);
    expect(configFromRequest({}).queueTimeout).toBe(3600);
  });

  it("takes oVirt's resilience policies; left out it is all, oVirt's default", () => {
    for (const policy of ['all', 'ha-only', 'none'] as const) {
      expect(configFromRequest({ resiliencePolicy: policy }).resiliencePolicy).toBe(policy);
    }
    expect(configFromRequest({ resiliencePolicy: null }).resiliencePolicy).toBe('all');
    expect(configFromRequest({}).resiliencePolicy).toBe('all');
  });

  it('names a misspelt field instead of silently ignoring it', () => {
    const err = rejection({ progresTimeout: 10 });
    expect(err.field).toBe('progresTimeout');
    expect(err.message).toMatch(/unknown field\(s\) progresTimeout; the fields are bandwidthPerMigration, /);
  });

  it('rejects a body that is not an object', () => {
    expect(rejection(5).field).toBe('(body)');
    expect(rejection([]).message).toMatch(/a JSON object/);
  });

  it('reports every issue, the first as the field', () => {
    const err = rejection({ progressTimeout: -1, maxDowntimeMs: 0 });
    expect(err.issues.map((i) => i.field)).toEqual(['progressTimeout', 'maxDowntimeMs']);
  });

  it('the schema itself is usable by the API (parse errors carry the path)', () => {
    const result = migrationConfigRequestSchema.safeParse({ parallelMigrationsPerCluster: -1 });
    expect(result.success).toBe(false);
    expect(result.error?.issues[0]?.path).toEqual(['parallelMigrationsPerCluster']);
  });
});

describe('policy overrides schema', () => {
  it('keeps only the fields given, with quantities resolved', () => {
    expect(
      migrationConfigOverridesSchema.parse({ bandwidthPerMigration: '1Gi', allowPostCopy: true }),
    ).toEqual({
      bandwidthPerMigration: GiB,
      allowPostCopy: true,
    });
    expect(migrationConfigOverridesSchema.parse({})).toEqual({});
  });

  it('rejects unknown and invalid fields, listing the overridable ones', () => {
    const unknown = migrationConfigOverridesSchema.safeParse({ nope: 1 });
    expect(unknown.error?.issues[0]?.message).toBe(
      'unknown field(s) nope; the fields are bandwidthPerMigration, completionTimeoutPerGiB, allowPostCopy, ' +
        'allowAutoConverge, allowWorkloadDisruption, maxDowntimeMs',
    );
    expect(migrationConfigOverridesSchema.safeParse({ maxDowntimeMs: -1 }).success).toBe(false);
    expect(migrationConfigOverridesSchema.parse({ maxDowntimeMs: 900 })).toEqual({ maxDowntimeMs: 900 });
  });

  // KubeVirt's MigrationPolicySpec (staging/src/kubevirt.io/api/migrations/v1alpha1/types.go) has none of
  // these; they are MigrationConfiguration (cluster) fields, and the resilience policy is oVirt's cluster one.
  it.each([
    ['parallelMigrationsPerCluster', 3],
    ['parallelOutboundMigrationsPerNode', 1],
    ['parallelInboundMigrationsPerNode', 1],
    ['progressTimeout', 60],
    ['queueTimeout', 600],
    ['queueTimeout', 0],
    ['resiliencePolicy', 'none'],
  ])('refuses the cluster-wide %s (%j), saying it is cluster-wide', (field, value) => {
    const result = migrationConfigOverridesSchema.safeParse({ [field]: value });
    expect(result.success).toBe(false);
    expect(result.error?.issues).toHaveLength(1);
    expect(result.error?.issues[0]?.path).toEqual([field]);
    expect(result.error?.issues[0]?.message).toBe(
      `${field} is cluster-wide: a policy cannot override it; set it in the cluster migration config (PUT /v1/migration-config)`,
    );
    expect(clusterWideFields).toContain(field);
  });

  it('overridable and cluster-wide fields partition the config', () => {
    expect([...migrationOverrideFields, ...clusterWideFields].sort()).toEqual(
      [...migrationConfigFields].sort(),
    );
    expect(migrationConfigFields).toEqual(Object.keys(migrationConfigFieldSchemas));
  });

  it("storedOverrides splits a stored policy's overrides into applied and ignored (cluster-wide) ones", () => {
    expect(
      storedOverrides({ parallelMigrationsPerCluster: 1, maxDowntimeMs: 900, progressTimeout: 5, other: 1 }),
    ).toEqual({
      applied: { maxDowntimeMs: 900 },
      ignored: [
        { field: 'parallelMigrationsPerCluster', value: 1 },
        { field: 'progressTimeout', value: 5 },
      ],
    });
    expect(storedOverrides(undefined)).toEqual({ applied: {}, ignored: [] });
  });
});

describe('completionDeadlineSeconds (KubeVirt: per GiB setting x decimal GB rounded up)', () => {
  const config = DEFAULT_MIGRATION_CONFIG;
  it.each([
    ['512 MiB of memory is 1 GB', 512 * MiB, 0, 150, 1],
    ['1 GiB is 1.07 GB, so 2 GB', GiB, 0, 150, 2],
    ['exactly 2 GB', 2e9, 0, 150, 2],
    ['one byte more than 2 GB is 3 GB', 2e9 + 1, 0, 150, 3],
    ['6 GB', 6e9, 0, 800, 6],
    ['6 GiB is 6.44 GB, so 7 GB', 6 * GiB, 0, 800, 7],
    ['1 GiB of memory + 10 GiB of local disk (block migration) is 11.8 GB, so 12 GB', GiB, 10 * GiB, 150, 12],
    ['memory 0.5 GB + disk 0.5 GB', 5e8, 5e8, 150, 1],
  ])('%s', (_name, memory, disk, perGiB, gb) => {
    expect(migrationDataGigabytes(memory, disk)).toBe(gb);
    expect(completionDeadlineSeconds({ ...config, completionTimeoutPerGiB: perGiB }, memory, disk)).toBe(
      perGiB * gb,
    );
  });

  it('the seed example "6 GiB times 800 s = 4800 s" only holds for 6 decimal GB', () => {
    expect(completionDeadlineSeconds({ completionTimeoutPerGiB: 800 }, 6e9, 0)).toBe(4800);
    expect(completionDeadlineSeconds({ completionTimeoutPerGiB: 800 }, 6 * GiB, 0)).toBe(5600);
  });

  it('0 per GiB means no deadline (0)', () => {
    expect(completionDeadlineSeconds({ completionTimeoutPerGiB: 0 }, 4 * GiB, 0)).toBe(0);
  });
});

/**
 * KubeVirt (kubevirt/kubevirt pkg/virt-config/virt-config.go, ClusterConfig.GetMigrationConfiguration): "For
 * backward compatibility, AllowWorkloadDisruption will follow the value of AllowPostCopy, if not explicitly
 * set". The cluster config can say "unset": leave the field out (or null).
 */
describe('allowWorkloadDisruption in the cluster config: unset follows allowPostCopy', () => {
  it('left out or null, it is unset (absent from the config)', () => {
    for (const body of [{}, { allowWorkloadDisruption: null }, { allowPostCopy: true }]) {
      const config = configFromRequest(body);
      expect(config.allowWorkloadDisruption).toBeUndefined();
      expect(JSON.parse(JSON.stringify(config))).not.toHaveProperty('allowWorkloadDisruption');
    }
    expect(configFromRequest({ allowWorkloadDisruption: false }).allowWorkloadDisruption).toBe(false);
    expect(configFromRequest({ allowWorkloadDisruption: true }).allowWorkloadDisruption).toBe(true);
  });

  it.each([
    [{ allowPostCopy: false }, { value: false, followsAllowPostCopy: true }],
    [{ allowPostCopy: true }, { value: true, followsAllowPostCopy: true }],
    [
      { allowPostCopy: true, allowWorkloadDisruption: false },
      { value: false, followsAllowPostCopy: false },
    ],
    [
      { allowPostCopy: false, allowWorkloadDisruption: true },
      { value: true, followsAllowPostCopy: false },
    ],
  ])('%j: %j', (config, expected) => {
    expect(workloadDisruptionAllowed(config)).toEqual(expected);
  });
});
