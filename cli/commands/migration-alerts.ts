import { apiAllPages, apiRequest } from '../api-client.ts';
import { filterQuery, newestPages } from '../list-pages.ts';
import {
  intOption,
  onePositional,
  stringOption,
  UsageError,
  type Command,
  type OptionSpec,
  type ParsedArgs,
} from '../command.ts';
import { table } from '../table.ts';

/** Cloudpods' climc verbs for migration-alert rules (seed 000): monitor-migrationalert-*. */

interface AlertView {
  id: string;
  name: string;
  metric: string;
  comparator: string;
  threshold: number;
  periodS: number;
  enabled: boolean;
  sourceHosts: { id: string; name: string | null }[];
  targetHosts: { id: string; name: string | null }[];
  sourceGuests: { id: string; name: string | null }[];
}

interface AlertEventView {
  id: number;
  at: string;
  ruleId: string;
  ruleName: string | null;
  action: string;
  notes: string;
}

const listOf = (args: ParsedArgs, name: string): string[] | undefined => {
  const raw = args.values[name];
  if (raw === undefined) return undefined;
  return (Array.isArray(raw) ? raw : [raw]).map(String);
};

const ruleOptions: OptionSpec = {
  period: { type: 'string' },
  'source-host': { type: 'string', multiple: true },
  'target-host': { type: 'string', multiple: true },
  'source-guest': { type: 'string', multiple: true },
  margin: { type: 'string' },
  cooldown: { type: 'string' },
};

function ruleBody(args: ParsedArgs): Record<string, unknown> {
  const body: Record<string, unknown> = {};
  const period = stringOption(args, 'period');
  if (period !== undefined) body.period = period;
  const fields: [string, string][] = [
    ['source-host', 'source_hosts'],
    ['target-host', 'target_hosts'],
    ['source-guest', 'source_guests'],
  ];
  for (const [flag, field] of fields) {
    const values = listOf(args, flag);
    if (values) body[field] = values;
  }
  const margin = stringOption(args, 'margin');
  if (margin !== undefined) {
    const value = Number(margin);
    if (!Number.isFinite(value))
      throw new UsageError(`--margin expects a fraction such as 0.02, got '${margin}'`);
    body.margin = value;
  }
  const cooldown = stringOption(args, 'cooldown');
  if (cooldown !== undefined) body.cooldown = cooldown;
  return body;
}

const names = (list: { id: string; name: string | null }[]) => list.map((x) => x.name ?? x.id).join(',');

const path = (rule: string) => `/v1/migration-alerts/${encodeURIComponent(rule)}`;

export const alertCreate: Command = {
  name: 'monitor-migrationalert-create',
  usage:
    'monitor-migrationalert-create [--period 5m] [--source-host H]... [--target-host H]... [--source-guest G]... [--margin 0.02] [--cooldown 15m] [--disabled] NAME cpu.usage_active.gt|mem.available.lt THRESHOLD',
  summary:
    'Create a migration-alert rule, e.g. test-cpu cpu.usage_active.gt 60 or test-mem mem.available.lt 2GiB',
  options: { ...ruleOptions, disabled: { type: 'boolean' } },
  async run(args, conn) {
    const [name, condition, threshold, ...rest] = args.positionals;
    if (!name || !condition || threshold === undefined)
      throw new UsageError('expected NAME METRIC.CMP THRESHOLD');
    if (rest.length > 0) throw new UsageError(`unexpected argument '${rest[0]}'`);
    const body = {
      name,
      metric: condition,
      threshold,
      ...ruleBody(args),
      ...(args.values.disabled ? { enabled: false } : {}),
    };
    const rule = await apiRequest<AlertView>(conn, 'POST', '/v1/migration-alerts', body);
    console.log(JSON.stringify(rule, null, 2));
  },
};

export const alertList: Command = {
  name: 'monitor-migrationalert-list',
  usage: 'monitor-migrationalert-list [--enabled true|false] [--metric cpu.usage_active|mem.available]',
  summary: 'List migration-alert rules',
  options: { enabled: { type: 'string' }, metric: { type: 'string' } },
  async run(args, conn) {
    const query = filterQuery(args, ['enabled', 'metric']);
    const alerts = await apiAllPages<AlertView>(conn, '/v1/migration-alerts', query);
    console.log(
      table(
        [
          'id',
          'name',
          'metric_type',
          'comparator',
          'threshold',
          'period',
          'enabled',
          'source_hosts',
          'target_hosts',
          'source_guests',
        ],
        alerts.map((a) => [
          a.id,
          a.name,
          a.metric,
          a.comparator,
          a.threshold,
          `${a.periodS}s`,
          a.enabled,
          names(a.sourceHosts),
          names(a.targetHosts),
          names(a.sourceGuests),
        ]),
      ),
    );
  },
};

export const alertShow: Command = {
  name: 'monitor-migrationalert-show',
  usage: 'monitor-migrationalert-show RULE',
  summary: 'Show one migration-alert rule (id or name)',
  options: {},
  async run(args, conn) {
    console.log(JSON.stringify(await apiRequest(conn, 'GET', path(onePositional(args, 'RULE'))), null, 2));
  },
};

export const alertUpdate: Command = {
  name: 'monitor-migrationalert-update',
  usage:
    'monitor-migrationalert-update [--threshold V] [--metric M] [--period 5m] [--source-host H]... [--target-host H]... [--source-guest G]... [--margin F] [--cooldown D] [--enable|--disable] RULE',
  summary: 'Change a migration-alert rule; --disable pauses its schedule, --enable resumes it',
  options: {
    ...ruleOptions,
    threshold: { type: 'string' },
    metric: { type: 'string' },
    enable: { type: 'boolean' },
    disable: { type: 'boolean' },
  },
  async run(args, conn) {
    const rule = onePositional(args, 'RULE');
    if (args.values.enable && args.values.disable)
      throw new UsageError('--enable and --disable exclude each other');
    const body: Record<string, unknown> = { ...ruleBody(args) };
    const threshold = stringOption(args, 'threshold');
    if (threshold !== undefined) body.threshold = threshold;
    const metric = stringOption(args, 'metric');
    if (metric !== undefined) body.metric = metric;
    if (args.values.enable) body.enabled = true;
    if (args.values.disable) body.enabled = false;
    if (Object.keys(body).length === 0) throw new UsageError('nothing to change');
    console.log(JSON.stringify(await apiRequest(conn, 'PATCH', path(rule), body), null, 2));
  },
};

export const alertDelete: Command = {
  name: 'monitor-migrationalert-delete',
  usage: 'monitor-migrationalert-delete RULE',
  summary: 'Delete a migration-alert rule and its schedule',
  options: {},
  async run(args, conn) {
    const deleted = await apiRequest<{ name: string }>(conn, 'DELETE', path(onePositional(args, 'RULE')));
    console.log(`deleted migration alert ${deleted.name}`);
  },
};

export const alertEvents: Command = {
  name: 'monitor-migrationalert-event',
  usage:
    'monitor-migrationalert-event [--limit N] [--type TYPE] [--level info|warning|error] [--since TIME] [RULE]',
  summary:
    "A rule's newest events (every rule's without RULE; --limit, 100 by default): create, migrating, migrate_success/fail, find_result_fail, skipped",
  options: {
    limit: { type: 'string' },
    type: { type: 'string' },
    level: { type: 'string' },
    since: { type: 'string' },
  },
  async run(args, conn) {
    if (args.positionals.length > 1) throw new UsageError(`unexpected argument '${args.positionals[1]}'`);
    const query = filterQuery(args, ['type', 'level', 'since']);
    if (args.positionals[0]) query.set('rule', args.positionals[0]);
    const events = await newestPages<AlertEventView>(
      conn,
      '/v1/migration-alert-events',
      query,
      intOption(args, 'limit'),
    );
    console.log(
      table(
        ['id', 'ops_time', 'obj_id', 'obj_type', 'obj_name', 'action', 'notes'],
        events.map((e) => [e.id, e.at, e.ruleId, 'migrationalert', e.ruleName, e.action, e.notes]),
      ),
    );
  },
};

export const alertPlanNow: Command = {
  name: 'monitor-migrationalert-plan',
  usage: 'monitor-migrationalert-plan RULE',
  summary: 'What the rule would move now, from the current metrics, without migrating (JSON)',
  options: {},
  async run(args, conn) {
    const plan = await apiRequest(conn, 'POST', `${path(onePositional(args, 'RULE'))}/plan`);
    console.log(JSON.stringify(plan, null, 2));
  },
};
