import type { DiskSpec, NetworkSpec } from './agent-contract.ts';
import { projectScopeRefusal, type Caller } from './project-scope.ts';
import { compareVersions } from './versions.ts';

export type { Caller } from './project-scope.ts';

/** Everything the live-migration pre-checks look at, read once before deciding. */
export interface HostSnapshot {
  id: string;
  name: string;
  enabled: boolean;
  online: boolean;
  maintenance: boolean;
  cpuModel: string;
  microcode: string;
  kernel: string;
  qemuVersion: string;
  cpus: number;
  memoryMb: number;
  networks: string[];
  sharedStoragePath: string;
  /** Memory and vCPUs of the guests placed on the host plus reservations of migrations in flight to it. */
  committedMemoryMb: number;
  committedVcpus: number;
}

export interface GuestSnapshot {
  id: string;
  name: string;
  status: string;
  project: string;
  vcpus: number;
  memoryMb: number;
  disks: DiskSpec[];
  networks: NetworkSpec[];
  passthroughDevices: string[];
  /**
   * Its `migrating` status was written by the very migration being checked (it holds its reservation). A
   * workflow task that ran the migration's local steps and then did not complete (its worker died, or was
   * starved past the task's timeout) runs them all again, pre-checks included, after the guest was marked.
   */
  markedByThisMigration?: boolean;
}

export interface PrecheckOptions {
  skipCpuCheck: boolean;
  skipKernelCheck: boolean;
  /**
   * The guest boots afresh on the destination (cold and rescue migration): no running state crosses, so the
   * destination's QEMU version does not matter. Absent: a live migration.
   */
  bootsAfresh?: boolean;
}

export interface CheckResult {
  name: string;
  ok: boolean;
  message: string;
  values: Record<string, unknown>;
}

/** vCPUs a host may promise per physical CPU; memory is never overcommitted. */
export const CPU_ALLOCATION_RATIO = 4;

const pass = (name: string, message: string, values: Record<string, unknown> = {}): CheckResult => ({
  name,
  ok: true,
  message,
  values,
});
const fail = (name: string, message: string, values: Record<string, unknown>): CheckResult => ({
  name,
  ok: false,
  message,
  values,
});

/** A viewer acts on nothing; a token scoped to projects acts only on their guests. */
export function callerMayAct(caller: Caller, guest: GuestSnapshot): CheckResult {
  const values = { role: caller.role, callerProjects: caller.projects ?? null, guestProject: guest.project };
  if (caller.role === 'viewer') {
    return fail('caller_may_act', `a viewer may not act on guest ${guest.name}`, values);
  }
  const refusal = projectScopeRefusal(caller, `guest ${guest.name}`, guest.project);
  if (refusal) return fail('caller_may_act', refusal, values);
  return pass('caller_may_act', 'caller may act on the guest', values);
}

export function guestIsRunning(guest: GuestSnapshot): CheckResult {
  if (guest.status === 'running') return pass('guest_running', 'guest is running', { status: guest.status });
  // That migration's first pass found it running, and power actions are refused while a migration is active.
  if (guest.status === 'migrating' && guest.markedByThisMigration) {
    return pass(
      'guest_running',
      'guest is running (marked migrating by this migration, whose steps run again)',
      {
        status: guest.status,
        markedByThisMigration: true,
      },
    );
  }
  return fail('guest_running', `guest ${guest.name} is ${guest.status}, not running`, {
    status: guest.status,
  });
}

export function hostIsUsable(role: 'source' | 'destination', host: HostSnapshot | undefined): CheckResult {
  const name = `${role}_host_usable`;
  if (!host) return fail(name, `${role} host does not exist`, { host: null });
  const values = {
    host: host.name,
    enabled: host.enabled,
    online: host.online,
    maintenance: host.maintenance,
  };
  if (!host.enabled) return fail(name, `${role} host ${host.name} is disabled`, values);
  if (!host.online) return fail(name, `${role} host ${host.name} is offline (no live etcd lease)`, values);
  if (role === 'destination' && host.maintenance) {
    return fail(name, `destination host ${host.name} is in maintenance`, values);
  }
  return pass(name, `${role} host ${host.name} is enabled and online`, values);
}

export function hostsDiffer(source: HostSnapshot, destination: HostSnapshot): CheckResult {
  const values = { source: source.name, destination: destination.name };
  if (source.id === destination.id)
    return fail('hosts_differ', `destination is the source host ${source.name}`, values);
  return pass('hosts_differ', 'source and destination differ', values);
}

export function destinationHasCapacity(guest: GuestSnapshot, destination: HostSnapshot): CheckResult {
  const freeMemoryMb = destination.memoryMb - destination.committedMemoryMb;
  const freeVcpus = destination.cpus * CPU_ALLOCATION_RATIO - destination.committedVcpus;
  const values = { neededMemoryMb: guest.memoryMb, freeMemoryMb, neededVcpus: guest.vcpus, freeVcpus };
  if (freeMemoryMb < guest.memoryMb) {
    return fail(
      'destination_capacity',
      `destination ${destination.name} has ${freeMemoryMb} MB free, guest needs ${guest.memoryMb} MB`,
      values,
    );
  }
  if (freeVcpus < guest.vcpus) {
    return fail(
      'destination_capacity',
      `destination ${destination.name} has ${freeVcpus} vCPUs free, guest needs ${guest.vcpus}`,
      values,
    );
  }
  return pass('destination_capacity', 'destination has the memory and vCPUs', values);
}

export function cpuCompatible(
  source: HostSnapshot,
  destination: HostSnapshot,
  options: PrecheckOptions,
): CheckResult {
  const values = {
    sourceCpuModel: source.cpuModel,
    destinationCpuModel: destination.cpuModel,
    sourceMicrocode: source.microcode,
    destinationMicrocode: destination.microcode,
    skipped: options.skipCpuCheck,
  };
  if (options.skipCpuCheck) return pass('cpu_compatible', 'CPU check skipped by request', values);
  if (source.cpuModel !== destination.cpuModel) {
    return fail(
      'cpu_compatible',
      `CPU model differs: source '${source.cpuModel}', destination '${destination.cpuModel}' (use skip_cpu_check to override)`,
      values,
    );
  }
  if (source.microcode !== destination.microcode) {
    return fail(
      'cpu_compatible',
      `CPU microcode differs: source ${source.microcode}, destination ${destination.microcode} (use skip_cpu_check to override)`,
      values,
    );
  }
  return pass('cpu_compatible', 'CPU model and microcode match', values);
}

/**
 * A running guest may move to the same or a newer QEMU, never to an older one: an older QEMU may not know the
 * source's machine type or device state. Checked for every live migration; skip_kernel_check does not reach it.
 */
export function qemuCompatible(
  source: HostSnapshot,
  destination: HostSnapshot,
  options: Pick<PrecheckOptions, 'bootsAfresh'> = {},
): CheckResult {
  const values = { sourceQemu: source.qemuVersion, destinationQemu: destination.qemuVersion };
  if (options.bootsAfresh) {
    return pass('qemu_compatible', 'the guest boots afresh: no running state crosses', values);
  }
  if (compareVersions(destination.qemuVersion, source.qemuVersion, 3) < 0) {
    return fail(
      'qemu_compatible',
      `destination QEMU ${destination.qemuVersion} is older than source QEMU ${source.qemuVersion}`,
      values,
    );
  }
  return pass('qemu_compatible', 'destination QEMU is the same as or newer than the source', values);
}

/**
 * Cloudpods' target kernel check: the destination host runs the very kernel the source does (the whole
 * version string, as its scheduler compares `kernel_version`), unless skip_kernel_check.
 */
export function kernelCompatible(
  source: HostSnapshot,
  destination: HostSnapshot,
  options: PrecheckOptions,
): CheckResult {
  const values = {
    sourceKernel: source.kernel,
    destinationKernel: destination.kernel,
    skipped: options.skipKernelCheck,
  };
  if (options.skipKernelCheck) return pass('kernel_compatible', 'kernel check skipped by request', values);
  if (destination.kernel !== source.kernel) {
    return fail(
      'kernel_compatible',
      `destination kernel ${destination.kernel} differs from source kernel ${source.kernel} (use skip_kernel_check to override)`,
      values,
    );
  }
  return pass('kernel_compatible', "destination runs the source host's kernel", values);
}

export function noPassthroughDevices(guest: GuestSnapshot): CheckResult {
  const values = { devices: guest.passthroughDevices };
  if (guest.passthroughDevices.length > 0) {
    return fail(
      'no_passthrough_devices',
      `guest has passed-through devices: ${guest.passthroughDevices.join(', ')}`,
      values,
    );
  }
  return pass('no_passthrough_devices', 'no passed-through devices', values);
}

export function diskCacheIsNone(guest: GuestSnapshot): CheckResult {
  const offending = guest.disks
    .filter((d) => d.cache !== 'none')
    .map((d) => ({ disk: d.id, cache: d.cache }));
  if (offending.length > 0) {
    const list = offending.map((d) => `${d.disk}=${d.cache}`).join(', ');
    return fail('disk_cache_none', `disks with a cache mode other than none: ${list}`, { disks: offending });
  }
  return pass('disk_cache_none', 'every disk uses cache mode none', { disks: guest.disks.length });
}

export function destinationReachesNetworks(guest: GuestSnapshot, destination: HostSnapshot): CheckResult {
  const needed = [...new Set(guest.networks.map((n) => n.name))];
  const missing = needed.filter((n) => !destination.networks.includes(n));
  const values = { needed, destinationNetworks: destination.networks, missing };
  if (missing.length > 0) {
    return fail(
      'destination_networks',
      `destination ${destination.name} does not reach networks: ${missing.join(', ')}`,
      values,
    );
  }
  return pass('destination_networks', 'destination reaches every guest network', values);
}

export function destinationReachesStorage(
  guest: GuestSnapshot,
  source: HostSnapshot,
  destination: HostSnapshot,
): CheckResult {
  const shared = guest.disks.filter((d) => d.storage === 'shared').map((d) => d.id);
  const values = {
    sharedDisks: shared,
    sourceSharedStorage: source.sharedStoragePath,
    destinationSharedStorage: destination.sharedStoragePath,
  };
  if (shared.length > 0 && source.sharedStoragePath !== destination.sharedStoragePath) {
    return fail(
      'destination_storage',
      `destination ${destination.name} does not reach the shared storage ${source.sharedStoragePath}`,
      values,
    );
  }
  return pass('destination_storage', 'destination reaches the guest storage', values);
}

export interface LiveMigrationCheckInput {
  caller: Caller;
  guest: GuestSnapshot;
  source: HostSnapshot | undefined;
  destination: HostSnapshot | undefined;
  options: PrecheckOptions;
}

/** Checks that concern the guest and source alone; they fail the request whatever the destination. */
export function guestAndSourceChecks(input: Omit<LiveMigrationCheckInput, 'destination'>): CheckResult[] {
  return [
    callerMayAct(input.caller, input.guest),
    guestIsRunning(input.guest),
    hostIsUsable('source', input.source),
    noPassthroughDevices(input.guest),
    diskCacheIsNone(input.guest),
  ];
}

/** Checks that a given destination must pass for this guest and source. */
export function destinationChecks(
  guest: GuestSnapshot,
  source: HostSnapshot,
  destination: HostSnapshot | undefined,
  options: PrecheckOptions,
): CheckResult[] {
  const usable = hostIsUsable('destination', destination);
  if (!destination || !usable.ok) return [usable];
  return [
    usable,
    hostsDiffer(source, destination),
    destinationHasCapacity(guest, destination),
    cpuCompatible(source, destination, options),
    qemuCompatible(source, destination, options),
    kernelCompatible(source, destination, options),
    destinationReachesNetworks(guest, destination),
    destinationReachesStorage(guest, source, destination),
  ];
}

export const failed = (results: CheckResult[]) => results.filter((r) => !r.ok);
