import type { Guest, Host } from '../db/schema.ts';
import type { GuestState } from '../domain/agent-contract.ts';
import { effectiveHostStatus } from '../domain/host-status.ts';

export function hostView(host: Host, online: Set<string>) {
  return {
    id: host.id,
    name: host.name,
    status: effectiveHostStatus(host.status, online.has(host.id)),
    enabled: host.enabled,
    address: host.address,
    agentUrl: host.agentUrl,
    migrationAddress: host.migrationAddress,
    /** Megabits per second of the migration link, as the agent reports it (null: unknown); bandwidth `auto` uses it. */
    migrationLinkMbps: host.migrationLinkMbps,
    driver: host.driver,
    cpuModel: host.cpuModel,
    microcode: host.microcode,
    kernel: host.kernel,
    qemuVersion: host.qemuVersion,
    cpus: host.cpus,
    memoryMb: host.memoryMb,
    networks: host.networks,
    sharedStoragePath: host.sharedStoragePath,
    labels: host.labels,
    autoMigrateOnHostDown: host.autoMigrateOnHostDown,
    autoMigrateOnHostShutdown: host.autoMigrateOnHostShutdown,
    registeredAt: host.registeredAt,
    updatedAt: host.updatedAt,
  };
}

/** What the host's agent says about the guest right now, or why we could not ask. */
export type LiveGuest = { reachable: true; state: GuestState | null } | { reachable: false; error: string };

export function serverView(guest: Guest, host: Host | undefined, live: LiveGuest | undefined) {
  return {
    id: guest.id,
    name: guest.name,
    status: guest.status,
    host: host ? { id: host.id, name: host.name } : { id: guest.hostId, name: null },
    vcpus: guest.vcpus,
    memoryMb: guest.memoryMb,
    disks: guest.disks,
    networks: guest.networks,
    labels: guest.labels,
    project: guest.project,
    projectLabels: guest.projectLabels,
    highlyAvailable: guest.highlyAvailable,
    passthroughDevices: guest.passthroughDevices,
    dirtyRateMibs: guest.dirtyRateMibs,
    lastError: guest.lastError,
    createdAt: guest.createdAt,
    updatedAt: guest.updatedAt,
    live: liveView(live),
  };
}

function liveView(live: LiveGuest | undefined) {
  if (!live) return null;
  if (!live.reachable) return { agentReachable: false, error: live.error };
  const state = live.state;
  return {
    agentReachable: true,
    status: state?.status ?? 'absent',
    hypervisorStatus: state?.hypervisorStatus ?? null,
    pid: state?.pid ?? null,
    heartbeat: state?.heartbeat ?? null,
  };
}
