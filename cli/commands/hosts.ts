import { evacuationWorkflowId } from '../../domain/workflow-ids.ts';
import { apiRequest } from '../api-client.ts';
import { onePositional, stringOption, type Command } from '../command.ts';
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
}

export const hostList: Command = {
  name: 'host-list',
  usage: 'host-list',
  summary: 'List hosts with their status and facts',
  options: {},
  async run(_args, conn) {
    const { items: hosts } = await apiRequest<{ items: HostView[] }>(conn, 'GET', '/v1/hosts');
    console.log(
      table(
        ['ID', 'Name', 'Status', 'Enabled', 'Address', 'CPUs', 'Mem(MB)', 'QEMU', 'CPU model'],
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
  usage: 'host-events [--limit N] HOST',
  summary:
    "A host's events, newest first: flag updates, host_down, host_down_auto_migrate (who moves and why)",
  options: { limit: { type: 'string' } },
  async run(args, conn) {
    const id = onePositional(args, 'HOST');
    const query = new URLSearchParams();
    const limit = stringOption(args, 'limit');
    if (limit !== undefined) query.set('limit', limit);
    const { items: events } = await apiRequest<{ items: HostEventView[] }>(
      conn,
      'GET',
      `/v1/hosts/${encodeURIComponent(id)}/events?${query}`,
    );
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
