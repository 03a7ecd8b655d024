import { DEFAULT_MIGRATION_CONFIG, type ClusterMigrationConfig } from '../migration-config.ts';
import { cloudpodsDefaultPolicy, type CloudpodsPolicy } from './cloudpods.ts';
import type { KubevirtPolicy } from './kubevirt.ts';
import type { NovaPolicy } from './nova.ts';
import { PREDICTIVE_DEFAULTS, type PredictivePolicy } from './predictive.ts';
import { ovirtSchedules, schedulePolicy, type SchedulePolicy, type ScheduleStep } from './schedule.ts';

/** Every policy the engine runs: plain data, frozen on a migration when it starts. */
export type ConvergencePolicy =
  KubevirtPolicy | NovaPolicy | SchedulePolicy | CloudpodsPolicy | PredictivePolicy;
export type ConvergencePolicyKind = ConvergencePolicy['kind'];

/** The policy types an operator picks (F13), oVirt's four plus an operator schedule and our predictive default. */
export const convergenceTypes = [
  'minimal-downtime',
  'post-copy',
  'suspend-workload',
  'large-vms',
  'schedule',
  'predictive',
] as const;
export type ConvergenceType = (typeof convergenceTypes)[number];

/** Our default convergence when no policy selects a guest. */
export const DEFAULT_CONVERGENCE_TYPE: ConvergenceType = 'predictive';

/**
 * The predictive policy starts at a third of the maximum downtime (100 ms for the default 300 ms, oVirt's
 * starting point), rounded to 10 ms, so a converging guest switches over with little downtime, and may raise
 * it up to the maximum as soon as the copy is predicted not to converge.
 */
export function predictivePolicy(
  config: Pick<ClusterMigrationConfig, 'maxDowntimeMs' | 'progressTimeout'>,
  bandwidthCeilingBytes: number | null = null,
): PredictivePolicy {
  const max = config.maxDowntimeMs;
  return {
    kind: 'predictive',
    initialDowntimeMs: max >= 30 ? Math.round(max / 30) * 10 : max,
    downtimeCeilingMs: max,
    bandwidthCeilingBytes,
    progressTimeoutSeconds: config.progressTimeout,
    minCompletedPasses: PREDICTIVE_DEFAULTS.minCompletedPasses,
    strikes: PREDICTIVE_DEFAULTS.strikes,
    cooldownPasses: PREDICTIVE_DEFAULTS.cooldownPasses,
  };
}

export function kubevirtPolicy(
  config: Pick<ClusterMigrationConfig, 'completionTimeoutPerGiB' | 'progressTimeout'>,
  initialDowntimeMs = 900,
): KubevirtPolicy {
  return {
    kind: 'kubevirt',
    completionTimeoutPerGiB: config.completionTimeoutPerGiB,
    progressTimeoutSeconds: config.progressTimeout,
    initialDowntimeMs,
  };
}

/** KubeVirt as shipped: 150 s/GiB, 150 s progress timeout, 900 ms max downtime. */
export const kubevirtDefault: KubevirtPolicy = kubevirtPolicy(DEFAULT_MIGRATION_CONFIG);

/** Nova as shipped: 500 ms in 10 steps of 75 s/GiB, 800 s/GiB completion timeout then abort, no auto-converge. */
export const novaDefault: NovaPolicy = {
  kind: 'nova',
  downtimeMs: 500,
  downtimeSteps: 10,
  downtimeDelaySecondsPerGiB: 75,
  completionTimeoutSecondsPerGiB: 800,
  timeoutAction: 'abort',
  permitAutoConverge: false,
};

/** Cloudpods with quickly-finish on. */
export const cloudpodsDefault: CloudpodsPolicy = cloudpodsDefaultPolicy(true);

/** Ours, with the default cluster config. */
export const predictiveDefault: PredictivePolicy = predictivePolicy(DEFAULT_MIGRATION_CONFIG);

export interface EnginePolicyOptions {
  /** The operator's steps, for 'schedule'. */
  schedule?: readonly ScheduleStep[];
  /** The name to show in reasons for an operator schedule. */
  name?: string;
  maxDowntimeMs: number;
  progressTimeout: number;
  /** For 'predictive': how far the ladder may raise the bandwidth (null: leave it). */
  bandwidthCeilingBytes?: number | null;
}

/**
 * THE mapping from an operator's policy type (F13) to the engine policy it runs: oVirt's four types are oVirt
 * schedules, 'schedule' is the operator's own, 'predictive' is ours. An explicit maximum downtime (a policy
 * override) caps the downtimes a shipped schedule would set.
 */
export function enginePolicyFor(type: ConvergenceType, options: EnginePolicyOptions): ConvergencePolicy {
  switch (type) {
    case 'minimal-downtime':
    case 'post-copy':
    case 'suspend-workload':
    case 'large-vms':
      return structuredClone(ovirtSchedules[type]);
    case 'schedule':
      if (!options.schedule || options.schedule.length === 0) {
        throw new Error("convergence 'schedule' needs a schedule");
      }
      return schedulePolicy(options.name ?? 'schedule', options.schedule, {
        defaultInitialDowntimeMs: options.maxDowntimeMs,
      });
    case 'predictive':
      return predictivePolicy(
        { maxDowntimeMs: options.maxDowntimeMs, progressTimeout: options.progressTimeout },
        options.bandwidthCeilingBytes ?? null,
      );
  }
}

/** A schedule with every downtime capped at maxDowntimeMs. */
export function capScheduleDowntime(policy: SchedulePolicy, maxDowntimeMs: number): SchedulePolicy {
  return {
    ...policy,
    initialDowntimeMs: Math.min(policy.initialDowntimeMs, maxDowntimeMs),
    steps: policy.steps.map((s) =>
      s.action === 'set-downtime' ? { ...s, downtimeMs: Math.min(s.downtimeMs, maxDowntimeMs) } : { ...s },
    ),
  };
}
