import type { DiskSpec } from './agent-contract.ts';
import { cloudpodsDefaultPolicy } from './convergence/cloudpods.ts';
import { startParameters } from './convergence/engine.ts';
import type { ConvergencePolicy } from './convergence/policies.ts';
import type { StartContext, StartParameters } from './convergence/types.ts';
import { bandwidthBytesPerSecond, type LiveMigrateOptions } from './live-migration.ts';
import { startContextFor, type ResolvedMigrationSettings } from './migration-policy.ts';
import type { SlotLimits } from './slots.ts';

const MIB = 1024 * 1024;

/** Everything a live migration runs with, decided once at its start and frozen on the migration record. */
export interface LiveMigrationPlan {
  policyName: string | null;
  convergencePolicy: ConvergencePolicy;
  startContext: StartContext;
  start: StartParameters;
  tls: boolean;
  limits: SlotLimits;
  /** How long the migration may wait for a slot before it fails (queueTimeout, in ms). */
  queueTimeoutMs: number;
  /** Where the request's own options changed what the settings said. */
  notes: string[];
}

/**
 * The request's options win over the resolved settings where the operator asked for something explicit:
 * max_bandwidth_mb caps the bandwidth, enable_tls turns TLS on, quickly_finish adds Cloudpods' quickly-finish on
 * top of the selected policy (the engine runs it beside the policy, whose own actions win on conflict; it needs
 * auto-converge, which it turns on, with Cloudpods' throttle when the policy sets none).
 * The settings' completionTimeoutPerGiB becomes the engine's completion deadline under every policy.
 */
export function planLiveMigration(
  settings: ResolvedMigrationSettings,
  options: LiveMigrateOptions,
  guest: { memoryMb: number; disks: DiskSpec[] },
): LiveMigrationPlan {
  const notes: string[] = [];
  const localDisks = guest.disks.filter((d) => d.storage === 'local').map((d) => d.sizeMb * MIB);
  const requestedBandwidth = bandwidthBytesPerSecond(options.maxBandwidthMb);
  const bandwidthBytes = requestedBandwidth > 0 ? requestedBandwidth : settings.bandwidthBytes;
  if (requestedBandwidth > 0) notes.push(`max_bandwidth_mb ${options.maxBandwidthMb} caps the bandwidth`);
  const base = startContextFor(
    { ...settings, bandwidthBytes },
    {
      memoryBytes: guest.memoryMb * MIB,
      localDiskBytes: localDisks.reduce((a, b) => a + b, 0),
      localDiskSizesBytes: localDisks,
    },
  );
  const startContext: StartContext = {
    ...base,
    autoConvergeAllowed: base.autoConvergeAllowed || options.quicklyFinish,
    ...(options.quicklyFinish ? { quicklyFinish: true } : {}),
  };
  const convergencePolicy: ConvergencePolicy = settings.convergencePolicy;
  let start = startParameters(convergencePolicy, startContext);
  if (options.quicklyFinish) {
    notes.push(
      `quickly_finish adds Cloudpods' quickly-finish on top of the '${convergencePolicy.kind}' policy`,
    );
    if (!start.autoConverge) {
      // Quickly-finish acts only once the auto-converge throttle is at its maximum: without it, it never would.
      // A policy that leaves auto-converge off sets no throttle either: Cloudpods' 60% + 20%.
      const { cpuThrottleInitial, cpuThrottleIncrement } = cloudpodsDefaultPolicy(true);
      start = {
        ...start,
        autoConverge: true,
        cpuThrottleInitial,
        cpuThrottleIncrement,
        reason: `${start.reason}; quickly_finish: auto-converge on (throttle ${cpuThrottleInitial}% + ${cpuThrottleIncrement}%, Cloudpods')`,
      };
    } else {
      start = { ...start, reason: `${start.reason}; quickly_finish` };
    }
  }
  const tls = settings.tls || options.enableTls;
  if (options.enableTls && !settings.tls) notes.push('enable_tls turns encryption on');
  return {
    policyName: settings.policyName,
    convergencePolicy,
    startContext,
    start: { ...start, bandwidthBytes: start.bandwidthBytes || bandwidthBytes },
    tls,
    limits: {
      perCluster: settings.parallelMigrationsPerCluster,
      outboundPerNode: settings.parallelOutboundMigrationsPerNode,
      inboundPerNode: settings.parallelInboundMigrationsPerNode,
    },
    queueTimeoutMs: settings.queueTimeout * 1000,
    notes,
  };
}
