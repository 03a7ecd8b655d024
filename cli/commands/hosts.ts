import { apiRequest } from '../api-client.ts';
import { onePositional, type Command } from '../command.ts';
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
    const { hosts } = await apiRequest<{ hosts: HostView[] }>(conn, 'GET', '/v1/hosts');
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
