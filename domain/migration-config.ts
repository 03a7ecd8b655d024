import { z } from 'zod';
import { resiliencePolicies, type ResiliencePolicy } from './host-down.ts';

/**
 * The cluster-wide live-migration config (F11), KubeVirt's `liveMigrationConfig` fields with KubeVirt's
 * defaults, plus the two knobs our engine needs (auto-converge, workload disruption), Cloudpods' maximum
 * downtime and our queue timeout. Pure: parsing a PUT body and the completion deadline; storage is someone
 * else's business.
 */
export interface ClusterMigrationConfig {
  /** Bytes per second per migration; 0 = no limit. */
  bandwidthPerMigration: number;
  /** Seconds per decimal GB of migrated data (memory, plus local disks for block migration); 0 = no deadline. */
  completionTimeoutPerGiB: number;
  parallelMigrationsPerCluster: number;
  parallelOutboundMigrationsPerNode: number;
  parallelInboundMigrationsPerNode: number;
  /** Seconds without progress (remaining bytes below the lowest seen) before the migration is cancelled; 0 = never. */
  progressTimeout: number;
  allowPostCopy: boolean;
  /** QEMU auto-converge (vCPU throttling) may be enabled. */
  allowAutoConverge: boolean;
  /**
   * KubeVirt's allowWorkloadDisruption: the guest may be paused so a migration finishes. Unset (left out),
   * it follows allowPostCopy, as KubeVirt's ClusterConfig.GetMigrationConfiguration does "for backward
   * compatibility" (kubevirt/kubevirt pkg/virt-config/virt-config.go); the resolved settings always carry a
   * boolean (see workloadDisruptionAllowed). Config rows stored before it could be unset carry the `false`
   * the old default filled in, and keep it.
   */
  allowWorkloadDisruption?: boolean;
  /** QEMU's downtime-limit for the final stop-and-copy, in ms (Cloudpods' default maximum downtime). */
  maxDowntimeMs: number;
  /**
   * Ours, not KubeVirt's (KubeVirt queues migrations without a deadline): seconds a migration may wait in
   * the queue for a slot under the parallel limits before it fails, saying how long it waited and where it
   * stood. There is no "wait forever"; the most is 30 days.
   */
  queueTimeout: number;
  /**
   * oVirt's cluster Resilience Policy: which guests of a lost host are restarted elsewhere. `all` (oVirt's
   * default), `ha-only` (highly available guests only) or `none`; the host's own flags decide too
   * (domain/host-down.ts).
   */
  resiliencePolicy: ResiliencePolicy;
}

export const DEFAULT_MIGRATION_CONFIG: Readonly<ClusterMigrationConfig> = Object.freeze({
  bandwidthPerMigration: 0,
  completionTimeoutPerGiB: 150,
  parallelMigrationsPerCluster: 5,
  parallelOutboundMigrationsPerNode: 2,
  parallelInboundMigrationsPerNode: 2,
  progressTimeout: 150,
  allowPostCopy: false,
  allowAutoConverge: false,
  // allowWorkloadDisruption: unset, following allowPostCopy (KubeVirt's default).
  maxDowntimeMs: 300,
  queueTimeout: 3600,
  resiliencePolicy: 'all',
});

/** Every config field, in the API's order (allowWorkloadDisruption included, though it has no default value). */
export const migrationConfigFields: (keyof ClusterMigrationConfig)[] = [
  'bandwidthPerMigration',
  'completionTimeoutPerGiB',
  'parallelMigrationsPerCluster',
  'parallelOutboundMigrationsPerNode',
  'parallelInboundMigrationsPerNode',
  'progressTimeout',
  'allowPostCopy',
  'allowAutoConverge',
  'allowWorkloadDisruption',
  'maxDowntimeMs',
  'queueTimeout',
  'resiliencePolicy',
];

/**
 * KubeVirt's effective allowWorkloadDisruption: the value set, else allowPostCopy's ("For backward
 * compatibility, AllowWorkloadDisruption will follow the value of AllowPostCopy, if not explicitly set":
 * kubevirt/kubevirt pkg/virt-config/virt-config.go, ClusterConfig.GetMigrationConfiguration).
 */
export function workloadDisruptionAllowed(
  config: Pick<ClusterMigrationConfig, 'allowPostCopy' | 'allowWorkloadDisruption'>,
): { value: boolean; followsAllowPostCopy: boolean } {
  return config.allowWorkloadDisruption === undefined
    ? { value: config.allowPostCopy, followsAllowPostCopy: true }
    : { value: config.allowWorkloadDisruption, followsAllowPostCopy: false };
}

/** The longest queueTimeout: 30 days, in seconds. */
export const MAX_QUEUE_TIMEOUT_SECONDS = 30 * 86_400;

/** QEMU refuses a downtime-limit above 2000 s. */
export const QEMU_MAX_DOWNTIME_MS = 2_000_000;

const QUANTITY_SUFFIXES: Record<string, number> = {
  '': 1,
  k: 1e3,
  M: 1e6,
  G: 1e9,
  T: 1e12,
  P: 1e15,
  E: 1e18,
  Ki: 2 ** 10,
  Mi: 2 ** 20,
  Gi: 2 ** 30,
  Ti: 2 ** 40,
  Pi: 2 ** 50,
  Ei: 2 ** 60,
};
const QUANTITY = /^\s*(\d+(?:\.\d+)?|\.\d+)\s*(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?\s*$/;
const QUANTITY_HINT = 'a number of bytes per second, or a quantity like "64Mi", "1Gi" or "500M"';

/**
 * A Kubernetes resource quantity as bytes: a plain number, or a string with a binary (Ki, Mi, Gi, Ti, Pi, Ei)
 * or decimal (k, M, G, T, P, E) suffix. Fractions round up to a whole byte, as Kubernetes does. Null if invalid.
 */
export function parseQuantity(value: unknown): number | null {
  if (typeof value === 'number') {
    return Number.isSafeInteger(value) && value >= 0 ? value : null;
  }
  if (typeof value !== 'string') return null;
  const match = QUANTITY.exec(value);
  if (!match) return null;
  const bytes = Math.ceil(Number(match[1]) * (QUANTITY_SUFFIXES[match[2] ?? ''] ?? 1));
  return Number.isSafeInteger(bytes) ? bytes : null;
}

/** Bandwidth as bytes per second: a non-negative whole number or a KubeVirt-style quantity string. */
export const bandwidthQuantitySchema = z
  .union([z.number(), z.string()], { error: QUANTITY_HINT })
  .transform((value, ctx) => {
    const bytes = parseQuantity(value);
    if (bytes === null) {
      ctx.addIssue({ code: 'custom', message: `${QUANTITY_HINT}, got ${JSON.stringify(value)}` });
      return z.NEVER;
    }
    return bytes;
  });

const wholeNumber = (what: string, min: number, max: number) =>
  z
    .number({ error: `${what}` })
    .int(`${what}`)
    .min(min, `${what} (at least ${min})`)
    .max(max, `${what} (at most ${max})`);

const flag = (what: string) => z.boolean({ error: `true or false: ${what}` });

/** Each field's validator, without defaults: the building block of the PUT body and of policy overrides. */
export const migrationConfigFieldSchemas = {
  bandwidthPerMigration: bandwidthQuantitySchema,
  completionTimeoutPerGiB: wholeNumber(
    'a whole number of seconds per GiB; 0 disables the deadline',
    0,
    86_400,
  ),
  parallelMigrationsPerCluster: wholeNumber('a whole number of migrations', 1, 10_000),
  parallelOutboundMigrationsPerNode: wholeNumber('a whole number of migrations', 1, 1_000),
  parallelInboundMigrationsPerNode: wholeNumber('a whole number of migrations', 1, 1_000),
  progressTimeout: wholeNumber('a whole number of seconds; 0 disables the progress timeout', 0, 86_400),
  allowPostCopy: flag('whether post-copy may be used'),
  allowAutoConverge: flag('whether QEMU auto-converge may throttle the guest'),
  allowWorkloadDisruption: flag('whether the guest may be paused to finish'),
  maxDowntimeMs: wholeNumber('a whole number of milliseconds', 1, QEMU_MAX_DOWNTIME_MS),
  queueTimeout: wholeNumber(
    'a whole number of seconds a migration may wait for a slot',
    1,
    MAX_QUEUE_TIMEOUT_SECONDS,
  ),
  resiliencePolicy: z.enum(resiliencePolicies, { error: `one of ${resiliencePolicies.join(', ')}` }),
} satisfies Record<keyof ClusterMigrationConfig, z.ZodType>;

function unknownFieldsError(allowed: readonly string[]) {
  return (issue: { code?: string; keys?: string[] }) =>
    issue.code === 'unrecognized_keys'
      ? `unknown field(s) ${(issue.keys ?? []).join(', ')}; the fields are ${allowed.join(', ')}`
      : issue.code === 'invalid_type'
        ? `a JSON object with any of the fields ${allowed.join(', ')}`
        : undefined;
}

type DefaultedField = Exclude<keyof ClusterMigrationConfig, 'allowWorkloadDisruption'>;

const withDefault = <K extends DefaultedField>(key: K) =>
  z.preprocess(
    (value) => (value === null ? undefined : value),
    (migrationConfigFieldSchemas[key] as unknown as z.ZodType<Required<ClusterMigrationConfig>[K]>).default(
      DEFAULT_MIGRATION_CONFIG[key] as Required<ClusterMigrationConfig>[K],
    ),
  );

/**
 * The PUT body of the cluster migration config. camelCase fields as in KubeVirt; a field left out (or null)
 * restores its default, as removing a key from KubeVirt's liveMigrationConfig does. Unknown fields are
 * rejected so a misspelt field is not silently ignored. Output: the full config.
 */
export const migrationConfigRequestSchema = z.strictObject(
  {
    bandwidthPerMigration: withDefault('bandwidthPerMigration'),
    completionTimeoutPerGiB: withDefault('completionTimeoutPerGiB'),
    parallelMigrationsPerCluster: withDefault('parallelMigrationsPerCluster'),
    parallelOutboundMigrationsPerNode: withDefault('parallelOutboundMigrationsPerNode'),
    parallelInboundMigrationsPerNode: withDefault('parallelInboundMigrationsPerNode'),
    progressTimeout: withDefault('progressTimeout'),
    allowPostCopy: withDefault('allowPostCopy'),
    allowAutoConverge: withDefault('allowAutoConverge'),
    // No default: left out (or null) it is unset and follows allowPostCopy.
    allowWorkloadDisruption: z.preprocess(
      (value) => (value === null ? undefined : value),
      migrationConfigFieldSchemas.allowWorkloadDisruption.optional(),
    ),
    maxDowntimeMs: withDefault('maxDowntimeMs'),
    queueTimeout: withDefault('queueTimeout'),
    resiliencePolicy: withDefault('resiliencePolicy'),
  },
  { error: unknownFieldsError(migrationConfigFields) },
);

/**
 * What a policy may override: the fields of KubeVirt's MigrationPolicySpec (kubevirt/kubevirt
 * staging/src/kubevirt.io/api/migrations/v1alpha1/types.go: allowAutoConverge, bandwidthPerMigration,
 * completionTimeoutPerGiB, maxDowntimeMs, allowPostCopy, allowWorkloadDisruption). maxDowntimeMs is one of
 * them in KubeVirt, and it is a convergence knob (the switchover downtime a guest tolerates, the ceiling of
 * our predictive ladder and of oVirt's schedules), a property of the guests a policy selects, so it stays
 * overridable. The policy's own convergence, schedule, bandwidth mode and encryption come on top
 * (domain/migration-policy.ts).
 */
export const migrationOverrideFields = [
  'bandwidthPerMigration',
  'completionTimeoutPerGiB',
  'allowPostCopy',
  'allowAutoConverge',
  'allowWorkloadDisruption',
  'maxDowntimeMs',
] as const satisfies readonly (keyof ClusterMigrationConfig)[];
export type MigrationOverrideField = (typeof migrationOverrideFields)[number];

/**
 * Cluster-wide fields, which no policy may override: the parallel limits size the cluster's one slot queue,
 * progressTimeout and queueTimeout are the cluster's (not in KubeVirt's MigrationPolicySpec either), and the
 * resilience policy is oVirt's cluster setting.
 */
export const clusterWideFields = [
  'parallelMigrationsPerCluster',
  'parallelOutboundMigrationsPerNode',
  'parallelInboundMigrationsPerNode',
  'progressTimeout',
  'queueTimeout',
  'resiliencePolicy',
] as const satisfies readonly (keyof ClusterMigrationConfig)[];
export type ClusterWideField = (typeof clusterWideFields)[number];

/** A policy's overrides: some of the overridable fields. */
export type MigrationPolicyOverrides = Partial<Pick<ClusterMigrationConfig, MigrationOverrideField>>;

export function clusterWideFieldMessage(field: ClusterWideField): string {
  return `${field} is cluster-wide: a policy cannot override it; set it in the cluster migration config (PUT /v1/migration-config)`;
}

const clusterWide = (field: ClusterWideField) =>
  z.never({ error: clusterWideFieldMessage(field) }).optional();

/**
 * Partial config as a policy's overrides: same validators, no defaults. A cluster-wide field is refused
 * saying so; other unknown fields are refused as unknown.
 */
export const migrationConfigOverridesSchema = z
  .strictObject(
    {
      bandwidthPerMigration: migrationConfigFieldSchemas.bandwidthPerMigration.optional(),
      completionTimeoutPerGiB: migrationConfigFieldSchemas.completionTimeoutPerGiB.optional(),
      allowPostCopy: migrationConfigFieldSchemas.allowPostCopy.optional(),
      allowAutoConverge: migrationConfigFieldSchemas.allowAutoConverge.optional(),
      allowWorkloadDisruption: migrationConfigFieldSchemas.allowWorkloadDisruption.optional(),
      maxDowntimeMs: migrationConfigFieldSchemas.maxDowntimeMs.optional(),
      ...Object.fromEntries(clusterWideFields.map((field) => [field, clusterWide(field)])),
    },
    { error: unknownFieldsError(migrationOverrideFields) },
  )
  .transform((overrides) => storedOverrides(overrides).applied);

/**
 * The overrides of a policy as stored, split: the overridable fields to apply, and the cluster-wide ones a
 * policy stored before they were refused may still carry, to ignore (and say so).
 */
export function storedOverrides(overrides: unknown): {
  applied: MigrationPolicyOverrides;
  ignored: { field: ClusterWideField; value: unknown }[];
} {
  const record =
    typeof overrides === 'object' && overrides !== null ? (overrides as Record<string, unknown>) : {};
  const applied: Record<string, unknown> = {};
  for (const field of migrationOverrideFields) {
    if (Object.hasOwn(record, field) && record[field] !== undefined) applied[field] = record[field];
  }
  const ignored = clusterWideFields
    .filter((field) => Object.hasOwn(record, field) && record[field] !== undefined)
    .map((field) => ({ field, value: record[field] }));
  return { applied: applied as MigrationPolicyOverrides, ignored };
}

/** A request that failed validation; `field` is the dotted path of the first offending field ('(body)' for the whole). */
export class MigrationSettingsError extends Error {
  constructor(
    readonly field: string,
    message: string,
    readonly issues: { field: string; message: string }[] = [{ field, message }],
  ) {
    super(message);
    this.name = 'MigrationSettingsError';
  }
}

/** Every zod issue as { field, message: "field: what was expected" }. */
export function describeIssues(error: z.ZodError): { field: string; message: string }[] {
  return error.issues.map((issue) => {
    // An unknown field is named by its own path, not its parent's.
    const path = issue.code === 'unrecognized_keys' ? [...issue.path, issue.keys[0] ?? ''] : issue.path;
    const field = path.map(String).join('.') || '(body)';
    return { field, message: `${field}: ${issue.message}` };
  });
}

/** Parses with a schema or throws a MigrationSettingsError naming the first offending field. */
export function parseOrThrow<T extends z.ZodType>(schema: T, body: unknown): z.output<T> {
  const result = schema.safeParse(body);
  if (result.success) return result.data;
  const issues = describeIssues(result.error);
  const first = issues[0] ?? { field: '(body)', message: '(body): invalid' };
  throw new MigrationSettingsError(first.field, first.message, issues);
}

/** The full config from a PUT body: fields left out take their defaults; invalid values throw naming the field. */
export function configFromRequest(body: unknown): ClusterMigrationConfig {
  return parseOrThrow(migrationConfigRequestSchema, body ?? {});
}

/** Decimal GB, rounded up: Kubernetes' Quantity.ScaledValue(resource.Giga), as KubeVirt sizes migrations. */
export function migrationDataGigabytes(memoryBytes: number, localDiskBytes: number): number {
  return Math.ceil((memoryBytes + localDiskBytes) / 1e9);
}

/**
 * KubeVirt's acceptable completion time: completionTimeoutPerGiB x the migrated data size, where the size is
 * the guest memory plus (for block migration) the local disks, in decimal GB rounded up. Despite the "GiB" in
 * the name, KubeVirt scales by 10^9: a 6 GiB guest is 7 GB, so 800 s/GiB gives 5600 s, not 4800 s.
 */
export function completionDeadlineSeconds(
  config: Pick<ClusterMigrationConfig, 'completionTimeoutPerGiB'>,
  memoryBytes: number,
  localDiskBytes: number,
): number {
  return config.completionTimeoutPerGiB * migrationDataGigabytes(memoryBytes, localDiskBytes);
}
