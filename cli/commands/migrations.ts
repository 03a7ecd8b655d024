import { setTimeout as sleep } from 'node:timers/promises';
import type { MigrationProgress } from '../../domain/live-migration.ts';
import { describeRequester, type Requester } from '../../domain/requester.ts';
import { DEFAULT_PAGE_LIMIT, MAX_PAGE_LIMIT } from '../../domain/paging.ts';
import { apiAllPages, apiRequest } from '../api-client.ts';
import { intOption, onePositional, stringOption, UsageError, type Command } from '../command.ts';
import type { ApiConnection } from '../connection.ts';
import { formatBytes, formatDuration, progressBar } from '../progress-bar.ts';
import { table } from '../table.ts';

interface MigrationView {
  id: string;
  kind: string;
  guest: { id: string; name: string | null };
  source: { name: string | null };
  destination: { name: string | null } | null;
  trigger: string;
  phase: string;
  progress: MigrationProgress | null;
  error: string | null;
  requestedBy: Requester | null;
  requestedAt: string;
  finishedAt: string | null;
  events?: { at: string; type: string; level: string; message: string }[];
}

/** A migrate request answers the migration itself. */
type StartedMigration = Pick<MigrationView, 'id' | 'kind' | 'destination'> & { workflowId: string };

const TERMINAL = new Set(['completed', 'failed', 'cancelled']);

export const serverLiveMigrate: Command = {
  name: 'server-live-migrate',
  usage:
    'server-live-migrate [--skip-cpu-check] [--skip-kernel-check] [--enable-tls] [--quickly-finish] [--max-bandwidth-mb MAX_BANDWIDTH_MB] [--keep-dest-guest-on-failed] [--prefer-host PREFER_HOST] [--with-same-labels] [--watch] <ID>',
  summary: 'Live-migrate a running server to another host',
  options: {
    'prefer-host': { type: 'string' },
    'skip-cpu-check': { type: 'boolean' },
    'skip-kernel-check': { type: 'boolean' },
    'enable-tls': { type: 'boolean' },
    'quickly-finish': { type: 'boolean' },
    'max-bandwidth-mb': { type: 'string' },
    'keep-dest-guest-on-failed': { type: 'boolean' },
    'with-same-labels': { type: 'boolean' },
    watch: { type: 'boolean' },
  },
  async run(args, conn) {
    const id = onePositional(args, 'ID');
    const bandwidth = intOption(args, 'max-bandwidth-mb');
    if (bandwidth !== undefined && bandwidth <= 0)
      throw new UsageError('--max-bandwidth-mb expects a positive integer');
    const flag = (name: string) => args.values[name] === true;
    const body = {
      prefer_host: stringOption(args, 'prefer-host'),
      skip_cpu_check: flag('skip-cpu-check'),
      skip_kernel_check: flag('skip-kernel-check'),
      enable_tls: flag('enable-tls'),
      quickly_finish: flag('quickly-finish'),
      max_bandwidth_mb: bandwidth ?? null,
      keep_dest_guest_on_failed: flag('keep-dest-guest-on-failed'),
      with_same_labels: flag('with-same-labels'),
    };
    if (body.with_same_labels) {
      const group = await apiRequest<{
        groupId: string;
        migrations: { server: string; id: string }[];
      }>(conn, 'POST', `/v1/servers/${encodeURIComponent(id)}/live-migrate`, body);
      console.log(`migration group ${group.groupId}:`);
      for (const m of group.migrations) console.log(`  ${m.server}: migration ${m.id}`);
      return;
    }
    const res = await apiRequest<StartedMigration>(
      conn,
      'POST',
      `/v1/servers/${encodeURIComponent(id)}/live-migrate`,
      body,
    );
    console.log(
      `migration ${res.id} started${res.destination ? ` to ${res.destination.name}` : ''} (workflow ${res.workflowId})`,
    );
    if (flag('watch')) await watch(conn, res.id);
    else console.log(`follow it with: vmctl migration-show --watch ${res.id}`);
  },
};

export const migrationList: Command = {
  name: 'migration-list',
  usage:
    'migration-list [--server ID] [--host HOST] [--status running|completed|failed|cancelled] [--limit N]',
  summary: 'List migrations, newest first',
  options: {
    server: { type: 'string' },
    host: { type: 'string' },
    status: { type: 'string' },
    limit: { type: 'string' },
  },
  async run(args, conn) {
    const query = new URLSearchParams();
    const server = stringOption(args, 'server');
    const host = stringOption(args, 'host');
    const status = stringOption(args, 'status');
    const limit = intOption(args, 'limit');
    if (server) query.set('guest', server);
    if (host) query.set('host', host);
    if (status) query.set('status', status);
    // The newest `--limit` (100 by default), across as many pages as that takes.
    const wanted = limit ?? DEFAULT_PAGE_LIMIT;
    query.set('limit', String(Math.min(wanted, MAX_PAGE_LIMIT)));
    const migrations = await apiAllPages<MigrationView>(conn, '/v1/migrations', query, wanted);
    console.log(
      table(
        ['ID', 'Kind', 'Server', 'Source', 'Destination', 'Phase', 'Progress', 'Requested', 'By'],
        migrations.map((m) => [
          m.id,
          m.kind,
          m.guest.name ?? m.guest.id,
          m.source.name,
          m.destination?.name,
          m.phase,
          m.progress ? `${m.progress.percent}%` : '',
          m.requestedAt,
          m.requestedBy?.by,
        ]),
      ),
    );
  },
};

export const migrationShow: Command = {
  name: 'migration-show',
  usage: 'migration-show [--watch] <ID>',
  summary: 'Show a migration: phase, progress, ETA, events, error; --watch follows it live',
  options: { watch: { type: 'boolean' } },
  async run(args, conn) {
    const id = onePositional(args, 'ID');
    if (args.values.watch === true) {
      await watch(conn, id);
      return;
    }
    const m = await apiRequest<MigrationView>(conn, 'GET', `/v1/migrations/${encodeURIComponent(id)}`);
    console.log(describe(m));
    for (const e of m.events ?? []) console.log(`  ${e.at}  ${e.level.padEnd(7)} ${e.type}: ${e.message}`);
  },
};

export const migrationCancel: Command = {
  name: 'migration-cancel',
  usage: 'migration-cancel <ID>',
  summary: 'Cancel a running migration: it rolls back and the server keeps running on its source',
  options: {},
  async run(args, conn) {
    const id = onePositional(args, 'ID');
    await apiRequest(conn, 'POST', `/v1/migrations/${encodeURIComponent(id)}/cancel`);
    console.log(`migration ${id} is being cancelled; the server stays on its source host`);
  },
};

function describe(m: MigrationView): string {
  const lines = [
    `migration ${m.id}: ${m.kind} ${m.guest.name ?? m.guest.id} ${m.source.name ?? '?'} -> ${m.destination?.name ?? '(choosing)'}`,
    `phase: ${m.phase}`,
    `requested by: ${describeRequester(m.requestedBy)} at ${m.requestedAt} (trigger ${m.trigger})`,
  ];
  const p = m.progress;
  if (p) {
    lines.push(
      `progress: ${progressBar(p.percent)}  ${formatBytes(p.transferredBytes)} sent, ${formatBytes(p.remainingBytes)} left of ${formatBytes(p.totalBytes)}`,
      `rate: ${p.mbps.toFixed(1)} Mbps, dirtying ${formatBytes(p.dirtyRateBytesPerSecond)}/s, pass ${p.passes}, expected downtime ${p.expectedDowntimeMs ?? '?'} ms, ETA ${formatDuration(p.etaSeconds)}`,
    );
    if (p.downtimeMs !== null) lines.push(`downtime: ${p.downtimeMs} ms`);
  }
  if (m.error) lines.push(`error: ${m.error}`);
  return lines.join('\n');
}

async function watch(conn: ApiConnection, id: string): Promise<void> {
  const tty = process.stdout.isTTY;
  let previous = '';
  for (;;) {
    const m = await apiRequest<MigrationView>(conn, 'GET', `/v1/migrations/${encodeURIComponent(id)}`);
    const text = describe(m);
    if (text !== previous) {
      // On a terminal the block is redrawn in place; in a pipe or log each change is a new block.
      if (tty && previous) process.stdout.write(`\x1b[${previous.split('\n').length}A\x1b[0J`);
      process.stdout.write(`${text}\n`);
      previous = text;
    }
    if (TERMINAL.has(m.phase)) {
      if (m.phase !== 'completed') process.exitCode = 1;
      return;
    }
    await sleep(500);
  }
}

export const serverMigrate: Command = {
  name: 'server-migrate',
  usage: 'server-migrate [--auto-start] [--rescue-mode] [--prefer-host PREFER_HOST] [--watch] <ID>',
  summary:
    'Migrate a stopped server (cold), or with --rescue-mode one whose host is down (all disks must reside on shared storage)',
  options: {
    'prefer-host': { type: 'string' },
    'auto-start': { type: 'boolean' },
    'rescue-mode': { type: 'boolean' },
    watch: { type: 'boolean' },
  },
  async run(args, conn) {
    const id = onePositional(args, 'ID');
    const flag = (name: string) => args.values[name] === true;
    const res = await apiRequest<StartedMigration>(
      conn,
      'POST',
      `/v1/servers/${encodeURIComponent(id)}/migrate`,
      {
        prefer_host: stringOption(args, 'prefer-host'),
        auto_start: flag('auto-start'),
        rescue_mode: flag('rescue-mode'),
      },
    );
    console.log(
      `${res.kind} migration ${res.id} started${res.destination ? ` to ${res.destination.name}` : ''} (workflow ${res.workflowId})`,
    );
    if (flag('watch')) await watch(conn, res.id);
    else console.log(`follow it with: vmctl migration-show --watch ${res.id}`);
  },
};
