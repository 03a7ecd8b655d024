import {
  CPU_ALLOCATION_RATIO,
  destinationChecks,
  failed,
  type CheckResult,
  type GuestSnapshot,
  type HostSnapshot,
  type PrecheckOptions,
} from './prechecks.ts';

export interface RejectedHost {
  host: string;
  failures: CheckResult[];
}

export type DestinationChoice =
  | { ok: true; destination: HostSnapshot; checks: CheckResult[]; rejected: RejectedHost[] }
  | { ok: false; reason: string; rejected: RejectedHost[] };

const freeMemoryMb = (h: HostSnapshot) => h.memoryMb - h.committedMemoryMb;
const freeVcpus = (h: HostSnapshot) => h.cpus * CPU_ALLOCATION_RATIO - h.committedVcpus;

/** Least loaded first: most free memory, then most free vCPUs, then name for a stable order. */
export function byLeastLoaded(a: HostSnapshot, b: HostSnapshot): number {
  return freeMemoryMb(b) - freeMemoryMb(a) || freeVcpus(b) - freeVcpus(a) || a.name.localeCompare(b.name);
}

/**
 * The scheduler: every candidate other than the source goes through the destination checks and the least
 * loaded one that passes wins. With prefer_host the same checks decide, and nothing else is tried.
 */
export function chooseDestination(
  guest: GuestSnapshot,
  source: HostSnapshot,
  candidates: HostSnapshot[],
  options: PrecheckOptions,
  preferHost?: HostSnapshot,
): DestinationChoice {
  if (preferHost) {
    const checks = destinationChecks(guest, source, preferHost, options);
    const failures = failed(checks);
    if (failures.length > 0) {
      const reason = failures.map((f) => `${f.name}: ${f.message}`).join('; ');
      return {
        ok: false,
        reason: `prefer_host ${preferHost.name} fails: ${reason}`,
        rejected: [{ host: preferHost.name, failures }],
      };
    }
    return { ok: true, destination: preferHost, checks, rejected: [] };
  }
  const rejected: RejectedHost[] = [];
  const passing: { host: HostSnapshot; checks: CheckResult[] }[] = [];
  for (const host of candidates) {
    if (host.id === source.id) continue;
    const checks = destinationChecks(guest, source, host, options);
    const failures = failed(checks);
    if (failures.length > 0) rejected.push({ host: host.name, failures });
    else passing.push({ host, checks });
  }
  passing.sort((a, b) => byLeastLoaded(a.host, b.host));
  const best = passing[0];
  if (!best) {
    const reason =
      rejected.length === 0
        ? 'no other host exists'
        : rejected.map((r) => `${r.host}: ${r.failures.map((f) => f.name).join(', ')}`).join('; ');
    return { ok: false, reason: `no destination host passes the checks (${reason})`, rejected };
  }
  return { ok: true, destination: best.host, checks: best.checks, rejected };
}
