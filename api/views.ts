import type { Guest, GuestReport, Host } from '../db/schema.ts';
import { reportFreshness } from '../domain/guest-reports.ts';
import { effectiveHostStatus } from '../domain/host-status.ts';

export function hostView(host: Host, online: boolean) {
  return {
    id: host.id,
    name: host.name,
    status: effectiveHostStatus(host.status, online),
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
    /** When the agent last reported its guests; `reports` says whether they still come. */
    lastReportAt: host.lastReportAt,
    reports: reportFreshness(host.lastReportAt, host.reportIntervalS, Date.now()).state,
  };
}

/** What the host's agent last reported of the guest (null: it holds none), or why that report is not current. */
export type LiveGuest =
  | { reported: true; report: GuestReport | null; lastReportAt: Date }
  | { reported: false; error: string; lastReportAt: Date | null };

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
  if (!live.reported) return { agentReachable: false, error: live.error, lastReportAt: live.lastReportAt };
  const report = live.report;
  return {
    agentReachable: true,
    status: report?.status ?? 'absent',
    hypervisorStatus: report?.hypervisorStatus ?? null,
    pid: report?.pid ?? null,
    heartbeat:
      report?.heartbeatCounter != null && report.heartbeatAt !== null
        ? { counter: report.heartbeatCounter, at: report.heartbeatAt.toISOString() }
        : null,
    lastReportAt: live.lastReportAt,
  };
}
