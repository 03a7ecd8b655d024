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
  migrationConfigFields,
  migrationConfigOverridesSchema,
  parseOrThrow,
  type ClusterMigrationConfig,
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
  selectors: { guestLabels: Labels; projectLabels: Labels };
  /** Cluster config fields this policy overrides for the guests it selects. */
  overrides: Partial<ClusterMigrationConfig>;
  convergence: ConvergenceType;
  /** The operator's schedule, for convergence 'schedule' (and only then). */
  schedule?: ScheduleStep[];
  /** auto: from the host link; hypervisor-default: QEMU's own; custom: mbps megabits per second. */
  bandwidth: { mode: BandwidthMode; mbps?: number };
  /**
   * TLS on the migration streams: true or false as set; absent, the default (on), except for the
   * 'large-vms' type, whose zero-copy transfer cannot be encrypted.
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

/** The create/update body of a policy. Omitted: no selectors, no overrides, predictive, auto bandwidth, TLS as by default. */
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
      .default({ guestLabels: {}, projectLabels: {} }),
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
    if (policy.convergence === 'large-vms' && policy.encryption) {
      ctx.addIssue({
        code: 'custom',
        path: ['encryption'],
        message: "not with convergence 'large-vms' (its zero-copy transfer cannot be encrypted)",
      });
    }
  });

/** A validated policy from a request body; throws MigrationSettingsError naming the first bad field. */
export function policyFromRequest(body: unknown): MigrationPolicy {
  return parseOrThrow(migrationPolicySchema, body);
}

const byName = (a: { name: string }, b: { name: string }) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);

export interface PolicyCandidate {
  name: string;
  matches: boolean;
  /** Selector labels matched (all of them when it matches). */
  matchedLabels: number;
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
 * KubeVirt's selection: a policy matches when every one of its selector labels (guest and project, exact
 * key=value) is on the guest / its project; a policy without any selector matches nobody; among the matches
 * the one matching the most labels wins, and a tie goes to the name that sorts first.
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
    if (matched.length + failed.length === 0) {
      return {
        name: policy.name,
        matches: false,
        matchedLabels: 0,
        detail: 'no selectors: a policy without selectors selects no guest',
      };
    }
    if (failed.length > 0) {
      return {
        name: policy.name,
        matches: false,
        matchedLabels: matched.length,
        detail: `does not match: ${failed.join('; ')}`,
      };
    }
    return {
      name: policy.name,
      matches: true,
      matchedLabels: matched.length,
      detail: `matches ${matched.length} label${matched.length === 1 ? '' : 's'}: ${matched.join(', ')}`,
    };
  });
  const explanation = candidates.map((c) => `${c.name}: ${c.detail}`);
  const matching = candidates.filter((c) => c.matches);
  if (matching.length === 0) {
    explanation.push(
      policies.length === 0
        ? 'no policies: the cluster config applies'
        : 'no policy matches: the cluster config applies',
    );
    return { policy: null, candidates, explanation };
  }
  const most = Math.max(...matching.map((c) => c.matchedLabels));
  const best = matching.filter((c) => c.matchedLabels === most);
  const winnerIndex = candidates.indexOf(best[0] as PolicyCandidate);
  const winner = sorted[winnerIndex] ?? null;
  explanation.push(
    best.length > 1
      ? `selected ${winner?.name}: ${best.map((c) => c.name).join(', ')} tie at ${most} matching labels, the first name in alphabetical order wins`
      : `selected ${winner?.name}: it matches the most labels (${most})`,
  );
  return { policy: winner, candidates, explanation };
}

export type SettingSource = 'cluster-default' | `policy:${string}`;

/** Migration streams run over TLS (each host's own certificate, only the peer host admitted) unless turned off. */
export const DEFAULT_TLS = true;

export const resolvedFields = [...migrationConfigFields, 'convergence', 'bandwidthBytes', 'tls'] as const;
export type ResolvedField = (typeof resolvedFields)[number];

/** The settings frozen on a migration when it starts. */
export interface ResolvedMigrationSettings extends ClusterMigrationConfig {
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
 */
export function resolveSettings(
  config: ClusterMigrationConfig,
  policy: MigrationPolicy | null,
  hostLinkMbps?: number,
): ResolvedMigrationSettings {
  const fromPolicy: SettingSource = policy ? `policy:${policy.name}` : 'cluster-default';
  const values: ClusterMigrationConfig = { ...config };
  const sources = Object.fromEntries(resolvedFields.map((f) => [f, 'cluster-default'])) as Record<
    ResolvedField,
    SettingSource
  >;
  const notes: string[] = [];
  const overridden = new Set<keyof ClusterMigrationConfig>();

  if (policy) {
    for (const key of migrationConfigFields) {
      const value = policy.overrides[key];
      if (value === undefined) continue;
      (values as unknown as Record<string, unknown>)[key] = value;
      sources[key] = fromPolicy;
      overridden.add(key);
    }
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

  // TLS is on unless the policy says otherwise: explicitly, or by a type that cannot encrypt.
  let tls = DEFAULT_TLS;
  if (policy?.encryption !== undefined) {
    tls = policy.encryption;
    sources.tls = fromPolicy;
  } else if (policy && convergence === 'large-vms') {
    tls = false;
    sources.tls = fromPolicy;
    notes.push("tls: off, as the 'large-vms' policy type's zero-copy transfer cannot be encrypted");
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
  };
}
