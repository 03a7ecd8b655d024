import { z } from 'zod';
import {
  capScheduleDowntime,
  convergenceTypes,
  DEFAULT_CONVERGENCE_TYPE,
  enginePolicyFor,
  type ConvergencePolicy,
  type ConvergenceType,
} from './convergence/policies.ts';
import { scheduleMaxDowntimeMs, scheduleSchema, type ScheduleStep } from './convergence/schedule.ts';
import type { StartContext } from './convergence/types.ts';
import {
  clusterWideFieldMessage,
  migrationConfigFields,
  migrationConfigOverridesSchema,
  migrationOverrideFields,
  parseOrThrow,
  storedOverrides,
  workloadDisruptionAllowed,
  type ClusterMigrationConfig,
  type MigrationPolicyOverrides,
} from './migration-config.ts';

/**
 * Label-selected migration policies (F12, KubeVirt's MigrationPolicy) carrying oVirt's policy settings (F13:
 * convergence type, bandwidth mode, encryption), and the settings a migration runs with once the cluster
 * config and the winning policy are combined. Pure.
 */
export type Labels = Record<string, string>;

export const bandwidthModes = ['auto', 'hypervisor-default', 'custom'] as const;
export type BandwidthMode = (typeof bandwidthModes)[number];

export interface MigrationPolicy {
  name: string;
  /**
   * Every label must match for the policy to select a guest; empty maps on both sides select every guest,
   * at the lowest precedence (see selectPolicy).
   */
  selectors: { guestLabels: Labels; projectLabels: Labels };
  /**
   * The cluster config fields (KubeVirt's MigrationPolicySpec ones, migrationOverrideFields) this policy
   * overrides for the guests it selects. A policy stored before the cluster-wide fields were refused may
   * still carry one: resolveSettings ignores it and says so.
   */
  overrides: MigrationPolicyOverrides;
  convergence: ConvergenceType;
  /** The operator's schedule, for convergence 'schedule' (and only then). */
  schedule?: ScheduleStep[];
  /** auto: from the host link; hypervisor-default: QEMU's own; custom: mbps megabits per second. */
  bandwidth: { mode: BandwidthMode; mbps?: number };
  /**
   * TLS on the migration streams: true or false as set; absent, the default (on), except for the
   * 'large-vms' type, off as oVirt's "Very large VMs" policy, whose migration "need not be encrypted"
   * (oVirt still encrypts it when told to, giving up zero-copy: so does an explicit true here).
   */
  encryption?: boolean;
}

const NAME = /^[a-zA-Z0-9][a-zA-Z0-9._-]{0,62}$/;

const labelsSchema = z.record(
  z.string().min(1, 'a label key').max(253, 'a label key of at most 253 characters'),
  z
    .string({ error: 'a label value (a string, possibly empty)' })
    .max(63, 'a label value of at most 63 characters'),
  { error: 'labels as an object of "key": "value" strings' },
);

/**
 * The create/update body of a policy. `selectors` is required, as in KubeVirt's MigrationPolicy CRD
 * (spec.selectors is required there): `{}` (or empty label maps) deliberately selects every guest at the
 * lowest precedence, so leaving it out never turns a policy into a catch-all by accident. Omitted: no
 * overrides, predictive, auto bandwidth, TLS as by default.
 */
export const migrationPolicySchema = z
  .strictObject({
    name: z
      .string({ error: 'a policy name' })
      .regex(
        NAME,
        'a name of letters, digits, ".", "_" or "-" (at most 63), starting with a letter or digit',
      ),
    selectors: z
      .strictObject({
        guestLabels: labelsSchema.default({}),
        projectLabels: labelsSchema.default({}),
      })
      .optional(),
    overrides: migrationConfigOverridesSchema.default({}),
    convergence: z
      .enum(convergenceTypes, { error: `one of ${convergenceTypes.join(', ')}` })
      .default(DEFAULT_CONVERGENCE_TYPE),
    schedule: scheduleSchema.optional(),
    bandwidth: z
      .strictObject({
        mode: z.enum(bandwidthModes, { error: `one of ${bandwidthModes.join(', ')}` }),
        mbps: z
          .number({ error: 'megabits per second' })
          .positive('a positive number of megabits per second')
          .max(10_000_000, 'at most 10000000 megabits per second')
          .optional(),
      })
      .default({ mode: 'auto' }),
    encryption: z.boolean({ error: 'true or false' }).optional(),
  })
  .superRefine((policy, ctx) => {
    if (policy.convergence === 'schedule' && policy.schedule === undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['schedule'],
        message: "required when convergence is 'schedule'",
      });
    }
    if (policy.convergence !== 'schedule' && policy.schedule !== undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['schedule'],
        message: `only used with convergence 'schedule' (this policy's is '${policy.convergence}')`,
      });
    }
    if (policy.bandwidth.mode === 'custom' && policy.bandwidth.mbps === undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['bandwidth', 'mbps'],
        message: "required when the mode is 'custom'",
      });
    }
    if (policy.bandwidth.mode !== 'custom' && policy.bandwidth.mbps !== undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['bandwidth', 'mbps'],
        message: `only with mode 'custom' (this one is '${policy.bandwidth.mode}')`,
      });
    }
    if (policy.bandwidth.mode !== 'auto' && policy.overrides.bandwidthPerMigration !== undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['overrides', 'bandwidthPerMigration'],
        message: `contradicts bandwidth mode '${policy.bandwidth.mode}': set one or the other`,
      });
    }
    if (policy.selectors === undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['selectors'],
        message:
          'required (as in KubeVirt): { "guestLabels": {...}, "projectLabels": {...} }; {} selects every guest at the lowest precedence',
      });
    }
  })
  .transform(({ name, selectors, ...policy }) => ({
    name,
    selectors: selectors ?? { guestLabels: {}, projectLabels: {} },
    ...policy,
  }));

/** A validated policy from a request body; throws MigrationSettingsError naming the first bad field. */
export function policyFromRequest(body: unknown): MigrationPolicy {
  return parseOrThrow(migrationPolicySchema, body);
}

const byName = (a: { name: string }, b: { name: string }) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);

export interface PolicyCandidate {
  name: string;
  matches: boolean;
  /** Selector labels matched (all of them when it matches): guest plus project. */
  matchedLabels: number;
  /** Of which guest (KubeVirt: VMI) labels. */
  matchedGuestLabels: number;
  /** Of which project (KubeVirt: namespace) labels. */
  matchedProjectLabels: number;
  detail: string;
}

export interface PolicySelection {
  policy: MigrationPolicy | null;
  /** Every policy considered, by name. */
  candidates: PolicyCandidate[];
  /** One line per policy, then the verdict. */
  explanation: string[];
}

function compareLabels(kind: 'guest' | 'project', selector: Labels, labels: Labels) {
  const matched: string[] = [];
  const failed: string[] = [];
  for (const key of Object.keys(selector).sort()) {
    const want = selector[key];
    const has = Object.hasOwn(labels, key) ? labels[key] : undefined;
    if (has === want) matched.push(`${kind} ${key}=${want}`);
    else if (has === undefined)
      failed.push(`${kind} label ${key}=${want} required, the ${kind} has no label ${key}`);
    else failed.push(`${kind} label ${key}=${want} required, the ${kind} has ${key}=${has}`);
  }
  return { matched, failed };
}

/**
 * KubeVirt's precedence (kubevirt/kubevirt pkg/virt-controller/watch/migration/migrationpolicy.go,
 * migrationPolicyMatchScore.greaterThan): the higher total of matched labels first; on equal totals the
 * one matching more guest (VMI) labels; then (the caller) the name.
 */
function outranks(a: PolicyCandidate, b: PolicyCandidate): number {
  return (
    b.matchedLabels - a.matchedLabels ||
    b.matchedGuestLabels - a.matchedGuestLabels ||
    (a.name < b.name ? -1 : a.name > b.name ? 1 : 0)
  );
}

const plural = (n: number, what: string) => `${n} ${what}${n === 1 ? '' : 's'}`;

/**
 * KubeVirt's selection (matchPolicy and countMatchingLabels in kubevirt/kubevirt
 * pkg/virt-controller/watch/migration/migrationpolicy.go): a policy matches when every one of its selector
 * labels (guest and project, exact key=value) is on the guest / its project. Among the matches the highest
 * total of matched labels wins; on equal totals the one matching more guest labels (KubeVirt: VMI labels)
 * beats one matching more project (namespace) labels; then the name that sorts first (byte order, as Go
 * compares strings). A policy whose selectors are empty matches every guest with 0 labels: the lowest
 * precedence, beaten by any policy matching a label. (KubeVirt's nil `selectors` matches nothing; its CRD
 * requires the field, and so does our schema, so a stored policy always has selectors.)
 */
export function selectPolicy(
  policies: readonly MigrationPolicy[],
  guestLabels: Labels,
  projectLabels: Labels,
): PolicySelection {
  const sorted = [...policies].sort(byName);
  const candidates = sorted.map((policy): PolicyCandidate => {
    const guest = compareLabels('guest', policy.selectors.guestLabels, guestLabels);
    const project = compareLabels('project', policy.selectors.projectLabels, projectLabels);
    const matched = [...guest.matched, ...project.matched];
    const failed = [...guest.failed, ...project.failed];
    const counts = {
      matchedLabels: matched.length,
      matchedGuestLabels: guest.matched.length,
      matchedProjectLabels: project.matched.length,
    };
    if (matched.length + failed.length === 0) {
      return {
        name: policy.name,
        matches: true,
        ...counts,
        detail: 'empty selectors: matches every guest, at the lowest precedence (0 labels)',
      };
    }
    if (failed.length > 0) {
      return {
        name: policy.name,
        matches: false,
        ...counts,
        detail: `does not match: ${failed.join('; ')}`,
      };
    }
    return {
      name: policy.name,
      matches: true,
      ...counts,
      detail: `matches ${plural(matched.length, 'label')}: ${matched.join(', ')}`,
    };
  });
  const explanation = candidates.map((c) => `${c.name}: ${c.detail}`);
  const matching = candidates.filter((c) => c.matches).sort(outranks);
  const best = matching[0];
  if (best === undefined) {
    explanation.push(
      policies.length === 0
        ? 'no policies: the cluster config applies'
        : 'no policy matches: the cluster config applies',
    );
    return { policy: null, candidates, explanation };
  }
  const winner = sorted[candidates.indexOf(best)] ?? null;
  // In name order (candidates are), for the explanation.
  const sameTotal = candidates.filter((c) => c.matches && c.matchedLabels === best.matchedLabels);
  const sameScore = sameTotal.filter((c) => c.matchedGuestLabels === best.matchedGuestLabels);
  let verdict: string;
  if (sameScore.length > 1) {
    verdict =
      `${sameScore.map((c) => c.name).join(', ')} tie at ${plural(best.matchedLabels, 'matching label')} ` +
      `(${best.matchedGuestLabels} guest, ${best.matchedProjectLabels} project), the first name in alphabetical order wins`;
  } else if (sameTotal.length > 1) {
    verdict =
      `${sameTotal.map((c) => c.name).join(', ')} tie at ${plural(best.matchedLabels, 'matching label')}; ` +
      `it matches the most guest labels (${best.matchedGuestLabels}), which KubeVirt ranks above project labels`;
  } else if (best.matchedLabels === 0) {
    verdict = 'only policies with empty selectors match: it is the catch-all';
  } else {
    verdict = `it matches the most labels (${best.matchedLabels})`;
  }
  explanation.push(`selected ${winner?.name}: ${verdict}`);
  return { policy: winner, candidates, explanation };
}

export type SettingSource = 'cluster-default' | `policy:${string}`;

/** Migration streams run over TLS (each host's own certificate, only the peer host admitted) unless turned off. */
export const DEFAULT_TLS = true;

export const resolvedFields = [...migrationConfigFields, 'convergence', 'bandwidthBytes', 'tls'] as const;
export type ResolvedField = (typeof resolvedFields)[number];

/** The resolved fields beyond the config's own. */
type ResolvedExtra =
  | 'policyName'
  | 'convergence'
  | 'convergencePolicy'
  | 'bandwidthMode'
  | 'bandwidthBytes'
  | 'tls'
  | 'sources'
  | 'notes';

/** The settings frozen on a migration when it starts. */
export interface ResolvedMigrationSettings extends Omit<ClusterMigrationConfig, 'allowWorkloadDisruption'> {
  /** Always a boolean here: unset in the config (or a policy), it followed allowPostCopy, and a note says so. */
  allowWorkloadDisruption: boolean;
  policyName: string | null;
  convergence: ConvergenceType;
  /** The engine policy to run, with its parameters (domain/convergence). */
  convergencePolicy: ConvergencePolicy;
  /** 'cluster': bandwidthPerMigration as configured (no policy). */
  bandwidthMode: BandwidthMode | 'cluster';
  /** Bytes/s to set; 0 = no cap (cluster/auto) or leave QEMU's default (hypervisor-default: do not set it). */
  bandwidthBytes: number;
  tls: boolean;
  /** Where each value comes from, so an operator can see why it is what it is. */
  sources: Record<ResolvedField, SettingSource>;
  /** How the derived values were computed. */
  notes: string[];
}

/**
 * Auto bandwidth (oVirt: from the host's link when there is no QoS): 90% of the link speed, leaving a tenth
 * for the management and storage traffic that shares it when there is no dedicated migration network,
 * divided by parallelOutboundMigrationsPerNode so the node's concurrent outbound migrations together stay
 * within the link (45% each with the default 2). The cluster's bandwidthPerMigration, when set, still caps it.
 */
export const AUTO_BANDWIDTH_LINK_FRACTION = 0.9;

const mbpsToBytes = (mbps: number) => Math.floor((mbps * 1_000_000) / 8);
const OVIRT_TYPES: readonly ConvergenceType[] = [
  'minimal-downtime',
  'post-copy',
  'suspend-workload',
  'large-vms',
];

/**
 * Every config field after the policy's overrides, the convergence policy to run with its parameters, the
 * bandwidth in bytes/s, TLS, and where each came from. `hostLinkMbps` is the source host's migration link
 * speed in megabits per second, for auto bandwidth.
 *
 * A policy overrides only KubeVirt's MigrationPolicySpec fields (migrationOverrideFields): the parallel
 * limits, progressTimeout, queueTimeout and the resilience policy always come from the cluster config, and a
 * stored policy that still names one has it ignored, with a note. allowWorkloadDisruption left unset follows
 * allowPostCopy, in the cluster config and in the policy, as KubeVirt's applyMigrationPolicySpec does.
 */
export function resolveSettings(
  config: ClusterMigrationConfig,
  policy: MigrationPolicy | null,
  hostLinkMbps?: number,
): ResolvedMigrationSettings {
  const fromPolicy: SettingSource = policy ? `policy:${policy.name}` : 'cluster-default';
  const clusterDisruption = workloadDisruptionAllowed(config);
  const values: Omit<ResolvedMigrationSettings, ResolvedExtra> = {
    ...config,
    allowWorkloadDisruption: clusterDisruption.value,
  };
  const sources = Object.fromEntries(resolvedFields.map((f) => [f, 'cluster-default'])) as Record<
    ResolvedField,
    SettingSource
  >;
  const notes: string[] = [];
  const overridden = new Set<keyof ClusterMigrationConfig>();

  if (policy) {
    const { applied, ignored } = storedOverrides(policy.overrides);
    for (const key of migrationOverrideFields) {
      const value = applied[key];
      if (value === undefined) continue;
      (values as unknown as Record<string, unknown>)[key] = value;
      sources[key] = fromPolicy;
      overridden.add(key);
    }
    for (const { field, value } of ignored) {
      notes.push(
        `overrides.${field}: ${JSON.stringify(value)} ignored, ${clusterWideFieldMessage(field)}; ` +
          `the cluster's ${JSON.stringify(config[field])} applies`,
      );
    }
  }

  // KubeVirt: "For backward compatibility, if the policy specifies AllowPostCopy but not
  // AllowWorkloadDisruption, AllowWorkloadDisruption should follow AllowPostCopy" (applyMigrationPolicySpec);
  // in the cluster config, unset, it follows the config's allowPostCopy (GetMigrationConfiguration).
  if (!overridden.has('allowWorkloadDisruption') && overridden.has('allowPostCopy')) {
    values.allowWorkloadDisruption = values.allowPostCopy;
    sources.allowWorkloadDisruption = fromPolicy;
    notes.push(
      `allowWorkloadDisruption: ${values.allowPostCopy ? 'on' : 'off'}, following the policy's allowPostCopy (the policy leaves it unset)`,
    );
  } else if (!overridden.has('allowWorkloadDisruption') && clusterDisruption.followsAllowPostCopy) {
    notes.push(
      `allowWorkloadDisruption: ${values.allowWorkloadDisruption ? 'on' : 'off'}, following the cluster's allowPostCopy (unset in the cluster config)`,
    );
  }

  const convergence = policy?.convergence ?? DEFAULT_CONVERGENCE_TYPE;
  sources.convergence = fromPolicy;
  if (policy && OVIRT_TYPES.includes(convergence)) {
    if (!overridden.has('allowAutoConverge') && !values.allowAutoConverge) {
      values.allowAutoConverge = true;
      sources.allowAutoConverge = fromPolicy;
      notes.push(`allowAutoConverge: on, as every oVirt policy type ('${convergence}') uses auto-converge`);
    }
    if (convergence === 'post-copy' && !overridden.has('allowPostCopy') && !values.allowPostCopy) {
      values.allowPostCopy = true;
      sources.allowPostCopy = fromPolicy;
      notes.push("allowPostCopy: on, as the 'post-copy' policy type switches to post-copy");
    }
  }

  // Bandwidth.
  const linkBytes =
    hostLinkMbps !== undefined && hostLinkMbps > 0
      ? Math.floor(mbpsToBytes(hostLinkMbps) * AUTO_BANDWIDTH_LINK_FRACTION)
      : null;
  const cap = values.bandwidthPerMigration;
  let bandwidthMode: ResolvedMigrationSettings['bandwidthMode'] = 'cluster';
  let bandwidthBytes = cap;
  let bandwidthCeilingBytes: number | null = null;
  if (policy) {
    bandwidthMode = policy.bandwidth.mode;
    sources.bandwidthBytes = fromPolicy;
    if (policy.bandwidth.mode === 'custom') {
      bandwidthBytes = mbpsToBytes(policy.bandwidth.mbps ?? 0);
      notes.push(`bandwidth: custom ${policy.bandwidth.mbps} Mbit/s = ${bandwidthBytes} B/s`);
    } else if (policy.bandwidth.mode === 'hypervisor-default') {
      bandwidthBytes = 0;
      notes.push("bandwidth: the hypervisor's default (max-bandwidth is not set)");
    } else if (linkBytes === null) {
      sources.bandwidthBytes = sources.bandwidthPerMigration;
      notes.push(
        `bandwidth: auto, but the host link speed is unknown: bandwidthPerMigration ${cap === 0 ? '(no limit)' : `${cap} B/s`} applies`,
      );
    } else {
      const share = Math.floor(linkBytes / values.parallelOutboundMigrationsPerNode);
      bandwidthBytes = cap > 0 ? Math.min(share, cap) : share;
      bandwidthCeilingBytes = cap > 0 ? Math.min(linkBytes, cap) : linkBytes;
      notes.push(
        `bandwidth: auto, ${AUTO_BANDWIDTH_LINK_FRACTION * 100}% of the ${hostLinkMbps} Mbit/s link / ` +
          `${values.parallelOutboundMigrationsPerNode} outbound migrations = ${share} B/s` +
          (cap > 0 && cap < share ? `, capped by bandwidthPerMigration at ${cap} B/s` : ''),
      );
    }
  } else {
    sources.bandwidthBytes = sources.bandwidthPerMigration;
  }

  // The convergence policy and the downtime it may reach.
  let convergencePolicy = enginePolicyFor(convergence, {
    schedule: policy?.schedule,
    name: policy?.name,
    maxDowntimeMs: values.maxDowntimeMs,
    progressTimeout: values.progressTimeout,
    bandwidthCeilingBytes,
  });
  if (convergencePolicy.kind === 'schedule') {
    if (overridden.has('maxDowntimeMs')) {
      convergencePolicy = capScheduleDowntime(convergencePolicy, values.maxDowntimeMs);
      notes.push(
        `maxDowntimeMs: the schedule's downtimes are capped at the policy's ${values.maxDowntimeMs} ms`,
      );
    } else {
      values.maxDowntimeMs = scheduleMaxDowntimeMs(convergencePolicy);
      sources.maxDowntimeMs = fromPolicy;
      notes.push(
        `maxDowntimeMs: ${values.maxDowntimeMs} ms, the most the '${convergencePolicy.name}' schedule sets`,
      );
    }
  }

  // TLS is on unless the policy says otherwise: explicitly, or by the 'large-vms' type, oVirt's "Very large
  // VMs", whose migration "need not be encrypted". An explicit encryption: true wins over the type, as in
  // oVirt, where MigrateVmCommand drops zero-copy for an encrypted migration instead of refusing it.
  let tls = DEFAULT_TLS;
  if (policy?.encryption !== undefined) {
    tls = policy.encryption;
    sources.tls = fromPolicy;
    if (tls && convergence === 'large-vms') {
      notes.push(
        "tls: on, as the policy asks, with the 'large-vms' type (oVirt encrypts it too and gives up zero-copy, which this engine does not use)",
      );
    }
  } else if (policy && convergence === 'large-vms') {
    tls = false;
    sources.tls = fromPolicy;
    notes.push(
      "tls: off, as oVirt's 'Very large VMs' policy does: its migration need not be encrypted (encryption: true turns TLS back on)",
    );
  }

  return {
    ...values,
    policyName: policy?.name ?? null,
    convergence,
    convergencePolicy,
    bandwidthMode,
    bandwidthBytes,
    tls,
    sources,
    notes,
  };
}

/** What the convergence engine needs at the start of a migration under these settings. */
export function startContextFor(
  settings: ResolvedMigrationSettings,
  guest: { memoryBytes: number; localDiskBytes: number; localDiskSizesBytes?: readonly number[] },
): StartContext {
  return {
    memoryBytes: guest.memoryBytes,
    localDiskBytes: guest.localDiskBytes,
    ...(guest.localDiskSizesBytes ? { localDiskSizesBytes: guest.localDiskSizesBytes } : {}),
    currentBandwidthBytes: settings.bandwidthBytes,
    postCopyAllowed: settings.allowPostCopy,
    pauseAllowed: settings.allowWorkloadDisruption,
    autoConvergeAllowed: settings.allowAutoConverge,
    completionTimeoutPerGiB: settings.completionTimeoutPerGiB,
  };
}
