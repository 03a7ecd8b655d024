import { guestRunWorkflowId } from '../../domain/workflow-ids.ts';
import { apiAllPages, apiExchange, apiRequest } from '../api-client.ts';
import {
  intOption,
  onePositional,
  stringOption,
  UsageError,
  type Command,
  type ParsedArgs,
} from '../command.ts';
import type { ApiConnection } from '../connection.ts';
import { table } from '../table.ts';

interface ServerView {
  id: string;
  name: string;
  status: string;
  host: { id: string; name: string | null };
  vcpus: number;
  memoryMb: number;
  live: {
    agentReachable: boolean;
    status?: string;
    heartbeat?: { counter: number } | null;
    lastReportAt?: string | null;
  } | null;
}

/** The heartbeat as last reported, or since when the host has not reported. */
function heartbeatCell(live: ServerView['live']): string | number {
  if (live === null) return '';
  if (live.agentReachable)
    return live.status === 'running' ? (live.heartbeat?.counter ?? '') : (live.status ?? '');
  return live.lastReportAt ? `no report since ${live.lastReportAt}` : 'no report yet';
}

export const serverList: Command = {
  name: 'server-list',
  usage: 'server-list [--host HOST] [--status STATUS]',
  summary: 'List servers with their host and heartbeat, as the hosts last reported them',
  options: { host: { type: 'string' }, status: { type: 'string' } },
  async run(args, conn) {
    const query = new URLSearchParams();
    const host = stringOption(args, 'host');
    const status = stringOption(args, 'status');
    if (host) query.set('host', host);
    if (status) query.set('status', status);
    const servers = await apiAllPages<ServerView>(conn, '/v1/servers', query);
    console.log(
      table(
        ['ID', 'Name', 'Status', 'Host', 'vCPUs', 'Mem(MB)', 'Heartbeat'],
        servers.map((s) => [
          s.id,
          s.name,
          s.status,
          s.host.name ?? s.host.id,
          s.vcpus,
          s.memoryMb,
          heartbeatCell(s.live),
        ]),
      ),
    );
  },
};

export const serverShow: Command = {
  name: 'server-show',
  usage: 'server-show <ID>',
  summary: 'Show one server (id or name) with its live state',
  options: {},
  async run(args, conn) {
    const id = onePositional(args, 'ID');
    console.log(
      JSON.stringify(await apiRequest(conn, 'GET', `/v1/servers/${encodeURIComponent(id)}`), null, 2),
    );
  },
};

export const serverCreate: Command = {
  name: 'server-create',
  usage:
    'server-create --host HOST [--vcpus N] [--memory-mb MB] [--disk-mb MB] [--local-disk] [--dirty-rate-mibs N] <NAME>',
  summary: 'Create a test-image server on a host and start it',
  options: {
    host: { type: 'string' },
    vcpus: { type: 'string' },
    'memory-mb': { type: 'string' },
    'disk-mb': { type: 'string' },
    'local-disk': { type: 'boolean' },
    'dirty-rate-mibs': { type: 'string' },
  },
  async run(args, conn) {
    const name = onePositional(args, 'NAME');
    const host = stringOption(args, 'host');
    if (!host) throw new UsageError('--host is required');
    const diskMb = intOption(args, 'disk-mb');
    const body = {
      name,
      host,
      vcpus: intOption(args, 'vcpus'),
      memoryMb: intOption(args, 'memory-mb'),
      dirtyRateMibs: intOption(args, 'dirty-rate-mibs'),
      disks:
        diskMb !== undefined
          ? [
              {
                id: 'disk0',
                sizeMb: diskMb,
                storage: args.values['local-disk'] ? 'local' : 'shared',
                cache: 'none',
              },
            ]
          : [],
    };
    const server = await apiRequest<ServerView>(conn, 'POST', '/v1/servers', body);
    console.log(
      `server ${server.name} (${server.id}) is being created; workflow ${guestRunWorkflowId('guest-create', server)}`,
    );
  },
};

async function power(action: 'stop' | 'start', args: ParsedArgs, conn: ApiConnection) {
  const name = onePositional(args, 'SERVER');
  // 200: it already was so; 202: the power workflow of the server runs.
  const { status, body: server } = await apiExchange<ServerView>(
    conn,
    'POST',
    `/v1/servers/${encodeURIComponent(name)}/${action}`,
  );
  console.log(
    status === 200
      ? `server ${name} is already ${action === 'stop' ? 'stopped' : 'running'}`
      : `${action === 'stop' ? 'stopping' : 'starting'} server ${name} (workflow ${guestRunWorkflowId('guest-power', server)}); server-show tells when it is ${action === 'stop' ? 'ready' : 'running'}`,
  );
}

export const serverStop: Command = {
  name: 'server-stop',
  usage: 'server-stop SERVER',
  summary: 'Stop a server (its status becomes ready, as in Cloudpods)',
  options: {},
  run: (args, conn) => power('stop', args, conn),
};

export const serverStart: Command = {
  name: 'server-start',
  usage: 'server-start SERVER',
  summary: 'Start a stopped server',
  options: {},
  run: (args, conn) => power('start', args, conn),
};

/** `k=v` → set k, as `--label`; each `--remove-label k` removes k. */
function labelPatch(args: ParsedArgs): Record<string, string | null> {
  const list = (name: string) => {
    const raw = args.values[name];
    return (Array.isArray(raw) ? raw : raw === undefined ? [] : [raw]).map(String);
  };
  const patch: Record<string, string | null> = {};
  for (const pair of list('label')) {
    const eq = pair.indexOf('=');
    if (eq <= 0) throw new UsageError(`--label expects KEY=VALUE, got '${pair}'`);
    patch[pair.slice(0, eq)] = pair.slice(eq + 1);
  }
  for (const key of list('remove-label')) patch[key] = null;
  if (Object.keys(patch).length === 0)
    throw new UsageError('nothing to change: give --label KEY=VALUE or --remove-label KEY');
  return patch;
}

export const serverUpdate: Command = {
  name: 'server-update',
  usage: 'server-update [--label KEY=VALUE]... [--remove-label KEY]... SERVER',
  summary: "Set or remove a server's labels (the others stay); policies and affinity select on them",
  options: {
    label: { type: 'string', multiple: true },
    'remove-label': { type: 'string', multiple: true },
  },
  async run(args, conn) {
    const name = onePositional(args, 'SERVER');
    const labels = labelPatch(args);
    const server = await apiRequest<ServerView & { labels: Record<string, string> }>(
      conn,
      'PATCH',
      `/v1/servers/${encodeURIComponent(name)}`,
      { labels },
    );
    const shown = Object.entries(server.labels)
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([k, v]) => `${k}=${v}`);
    console.log(`server ${server.name}: labels ${shown.length > 0 ? shown.join(', ') : '(none)'}`);
  },
};
