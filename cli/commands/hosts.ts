import { evacuationWorkflowId } from '../../domain/workflow-ids.ts';
import { apiAllPages, apiRequest } from '../api-client.ts';
import { intOption, onePositional, stringOption, type Command } from '../command.ts';
import { filterQuery, newestPages } from '../list-pages.ts';
import { table } from '../table.ts';

interface HostView {
  id: string;
  name: string;
  status: string;
  enabled: boolean;
  address: string;
  cpuModel: string;
  microcode: string;
  qemuVersion: string;
  kernel: string;
  cpus: number;
  memoryMb: number;
  driver: string;
  lastReportAt: string | null;
  reports: 'current' | 'late' | 'never';
}

/** Whether the host's state reports still come; since when they stopped. */
const reportsCell = (h: HostView): string =>
  h.reports === 'late' ? `late (last ${h.lastReportAt})` : h.reports;

export const hostList: Command = {
  name: 'host-list',
  usage:
    'host-list [--status online|offline|maintenance] [--enabled true|false] [--driver qemu|sim] [--label KEY=VALUE]',
  summary: 'List hosts with their status and facts',
  options: {
    status: { type: 'string' },
    enabled: { type: 'string' },
    driver: { type: 'string' },
    label: { type: 'string' },
  },
  async run(args, conn) {
    const query = filterQuery(args, ['status', 'enabled', 'driver', 'label']);
    const hosts = await apiAllPages<HostView>(conn, '/v1/hosts', query);
    console.log(
      table(
        ['ID', 'Name', 'Status', 'Enabled', 'Address', 'CPUs', 'Mem(MB)', 'QEMU', 'CPU model', 'Reports'],
        hosts.map((h) => [
          h.id,
          h.name,
          h.status,
          h.enabled,
          h.address,
          h.cpus,
          h.memoryMb,
          h.qemuVersion,
          h.cpuModel,
          reportsCell(h),
        ]),
      ),
    );
  },
};

export const hostShow: Command = {
  name: 'host-show',
  usage: 'host-show <ID>',
  summary: 'Show one host (id or name)',
  options: {},
  async run(args, conn) {
    const id = onePositional(args, 'ID');
    const host = await apiRequest<HostView>(conn, 'GET', `/v1/hosts/${encodeURIComponent(id)}`);
    console.log(JSON.stringify(host, null, 2));
  },
};

interface HostFlagsView {
  name: string;
  autoMigrateOnHostDown: boolean;
  autoMigrateOnHostShutdown: boolean;
}

const flagWord = (on: boolean) => (on ? 'enable' : 'disable');

export const hostAutoMigrateOnHostDown: Command = {
  name: 'host-auto-migrate-on-host-down',
  usage:
    'host-auto-migrate-on-host-down HOST [--auto-migrate-on-host-down enable|disable] [--auto-migrate-on-host-shutdown enable|disable]',
  summary:
    "Whether a lost host's guests are rescued elsewhere (shutdown needs down too); a flag left out keeps its value",
  options: {
    'auto-migrate-on-host-down': { type: 'string' },
    'auto-migrate-on-host-shutdown': { type: 'string' },
  },
  async run(args, conn) {
    const id = onePositional(args, 'HOST');
    const down = stringOption(args, 'auto-migrate-on-host-down');
    const shutdown = stringOption(args, 'auto-migrate-on-host-shutdown');
    const host = await apiRequest<HostFlagsView>(
      conn,
      'POST',
      `/v1/hosts/${encodeURIComponent(id)}/auto-migrate-on-host-down`,
      {
        ...(down !== undefined ? { auto_migrate_on_host_down: down } : {}),
        ...(shutdown !== undefined ? { auto_migrate_on_host_shutdown: shutdown } : {}),
      },
    );
    console.log(
      table(
        ['Name', 'auto_migrate_on_host_down', 'auto_migrate_on_host_shutdown'],
        [[host.name, flagWord(host.autoMigrateOnHostDown), flagWord(host.autoMigrateOnHostShutdown)]],
      ),
    );
  },
};

interface HostEventView {
  id: number;
  at: string;
  action: string;
  level: string;
  notes: string;
}

export const hostEvents: Command = {
  name: 'host-events',
  usage: 'host-events [--limit N] [--type TYPE] [--level info|warning|error] [--since TIME] HOST',
  summary:
    "A host's newest events (--limit, 100 by default): flag updates, host_down, host_down_auto_migrate (who moves and why)",
  options: {
    limit: { type: 'string' },
    type: { type: 'string' },
    level: { type: 'string' },
    since: { type: 'string' },
  },
  async run(args, conn) {
    const id = onePositional(args, 'HOST');
    const query = filterQuery(args, ['type', 'level', 'since']);
    const path = `/v1/hosts/${encodeURIComponent(id)}/events`;
    const events = await newestPages<HostEventView>(conn, path, query, intOption(args, 'limit'));
    console.log(
      table(
        ['ID', 'Time', 'Action', 'Level', 'Notes'],
        events.map((e) => [e.id, e.at, e.action, e.level, e.notes]),
      ),
    );
  },
};

export const hostMaintenanceEnter: Command = {
  name: 'host-maintenance-enter',
  usage: 'host-maintenance-enter HOST',
  summary:
    'Take a host out of scheduling and evacuate it: running guests live-migrate, stopped ones move cold (host-events shows each)',
  options: {},
  async run(args, conn) {
    const id = onePositional(args, 'HOST');
    const host = await apiRequest<{ id: string; name: string }>(
      conn,
      'POST',
      `/v1/hosts/${encodeURIComponent(id)}/maintenance`,
    );
    console.log(
      `host ${id} is in maintenance; evacuating (workflow ${evacuationWorkflowId(host)}); follow it with: vmctl host-events ${id}`,
    );
  },
};

export const hostMaintenanceExit: Command = {
  name: 'host-maintenance-exit',
  usage: 'host-maintenance-exit HOST',
  summary: 'Return a host to scheduling (an evacuation still running is cancelled)',
  options: {},
  async run(args, conn) {
    const id = onePositional(args, 'HOST');
    await apiRequest(conn, 'DELETE', `/v1/hosts/${encodeURIComponent(id)}/maintenance`);
    console.log(`host ${id} is back in scheduling`);
  },
};
