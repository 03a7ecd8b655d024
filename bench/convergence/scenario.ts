import type { GuestSpec } from '../../domain/agent-contract.ts';
import {
  completionDeadlineSeconds,
  DEFAULT_MIGRATION_CONFIG,
  migrationDataGigabytes,
  workloadDisruptionAllowed,
} from '../../domain/migration-config.ts';
import {
  DEFAULT_CONVERGENCE_TYPE,
  enginePolicyFor,
  kubevirtDefault,
  novaCompletionTimeoutSeconds,
  novaDataGb,
  novaDefault,
  predictiveDefault,
  type ConvergencePolicy,
  type StartContext,
} from '../../domain/convergence/index.ts';

export const MIB = 1024 * 1024;

/**
 * The non-converging guest: 512 MiB (1 decimal GB for KubeVirt, so its deadline is 150 s), rewriting a
 * 64 MiB region at 45 MiB/s, 1.5 x the 30 MiB/s cap. The dirtier walks its region page by page, so a pass
 * of T seconds leaves min(64 MiB, 45 x T MiB) dirty: the passes grow until every pass re-sends the whole
 * region (~2.1 s at 30 MiB/s), which is more than any of the three policies' downtime limits can take at
 * 30 MiB/s (900 ms fits 27 MiB). The region is larger than what the guest dirties in one second, so QEMU's
 * 1 s calc-dirty-rate probe can see the full rate.
 */
export const GUEST = {
  vcpus: 1,
  memoryMb: 512,
  fillMb: 64,
  dirtyRateMibs: 45,
} as const;

export const CAP_MIB_PER_S = 30;
export const CAP_BYTES = CAP_MIB_PER_S * MIB;

export function guestSpec(id: string, mac: string): GuestSpec {
  return { id, name: id, ...GUEST, disks: [], networks: [{ name: 'default', mac }] };
}

export const contenderKeys = ['predictive', 'kubevirt', 'nova'] as const;
export type ContenderKey = (typeof contenderKeys)[number];

export interface Contender {
  key: ContenderKey;
  label: string;
  policy: ConvergencePolicy;
  context: StartContext;
  /** How often the product polls query-migrate. */
  pollMs: number;
  /** When the policy itself gives up or forces completion, seconds after migrate (for the report). */
  policyEndSeconds: number;
  describe: string;
}

const MEMORY_BYTES = GUEST.memoryMb * MIB;

/** What every contender shares: the guest, no local disks, the cap, the cluster defaults for the rest. */
const baseContext = {
  memoryBytes: MEMORY_BYTES,
  localDiskBytes: 0,
  currentBandwidthBytes: CAP_BYTES,
  pauseAllowed: workloadDisruptionAllowed(DEFAULT_MIGRATION_CONFIG).value,
  autoConvergeAllowed: DEFAULT_MIGRATION_CONFIG.allowAutoConverge,
} as const;

/**
 * A contender that allows post-copy: allowWorkloadDisruption left unset follows allowPostCopy (KubeVirt's rule,
 * ours too), so it may also pause; ours carries the cluster's completion deadline as a production plan does.
 */
const postCopyContext = {
  ...baseContext,
  postCopyAllowed: true,
  pauseAllowed: workloadDisruptionAllowed({ ...DEFAULT_MIGRATION_CONFIG, allowPostCopy: true }).value,
} as const;

export function contenders(): Contender[] {
  // Our default is what the migration settings resolve to when no policy selects the guest (no link speed
  // known, so no bandwidth ceiling): check that it is the shipped predictiveDefault.
  const ours = enginePolicyFor(DEFAULT_CONVERGENCE_TYPE, {
    maxDowntimeMs: DEFAULT_MIGRATION_CONFIG.maxDowntimeMs,
    progressTimeout: DEFAULT_MIGRATION_CONFIG.progressTimeout,
    bandwidthCeilingBytes: null,
  });
  if (JSON.stringify(ours) !== JSON.stringify(predictiveDefault)) {
    throw new Error(`enginePolicyFor('${DEFAULT_CONVERGENCE_TYPE}') differs from predictiveDefault`);
  }
  const kubevirtDeadline = completionDeadlineSeconds(kubevirtDefault, MEMORY_BYTES, 0);
  const novaContext: StartContext = { ...baseContext, postCopyAllowed: false };
  const novaTimeout = novaCompletionTimeoutSeconds(novaDefault, novaDataGb(novaContext));
  return [
    {
      key: 'predictive',
      label: 'ours (predictive)',
      policy: predictiveDefault,
      context: {
        ...postCopyContext,
        completionTimeoutPerGiB: DEFAULT_MIGRATION_CONFIG.completionTimeoutPerGiB,
      },
      pollMs: 500,
      policyEndSeconds: Number.NaN,
      describe:
        `predictiveDefault: downtime ${predictiveDefault.initialDowntimeMs} ms, ceiling ` +
        `${predictiveDefault.downtimeCeilingMs} ms, ${predictiveDefault.strikes} strikes after ` +
        `${predictiveDefault.minCompletedPasses} passes; post-copy allowed; poll 500 ms`,
    },
    {
      key: 'kubevirt',
      label: 'KubeVirt default',
      policy: kubevirtDefault,
      context: postCopyContext,
      pollMs: 400,
      policyEndSeconds: kubevirtDeadline,
      describe:
        `kubevirtDefault: downtime ${kubevirtDefault.initialDowntimeMs} ms; post-copy past ` +
        `${kubevirtDefault.completionTimeoutPerGiB} s/GB x ${migrationDataGigabytes(MEMORY_BYTES, 0)} GB = ` +
        `${kubevirtDeadline} s; post-copy allowed; poll 400 ms`,
    },
    {
      key: 'nova',
      label: 'Nova default',
      policy: novaDefault,
      context: novaContext,
      pollMs: 500,
      policyEndSeconds: novaTimeout,
      describe:
        `novaDefault: downtime ${novaDefault.downtimeMs / novaDefault.downtimeSteps} -> ${novaDefault.downtimeMs} ms ` +
        `in ${novaDefault.downtimeSteps} steps of ${novaDefault.downtimeDelaySecondsPerGiB} s/GiB; abort past ` +
        `${novaDefault.completionTimeoutSecondsPerGiB} s/GiB x ${novaDataGb(novaContext)} GiB (at least 2) = ` +
        `${novaTimeout} s; no post-copy (Nova's default); poll 500 ms`,
    },
  ];
}
