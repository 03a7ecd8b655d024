import { readFileSync } from 'node:fs';
import { apiAllPages, apiRequest } from '../api-client.ts';
import { onePositional, stringOption, UsageError, type Command, type ParsedArgs } from '../command.ts';
import { table } from '../table.ts';

/** KEY=VALUE pairs; values that parse as JSON (numbers, booleans) are sent as such, others as strings. */
function assignments(args: ParsedArgs): Record<string, unknown> {
  const body: Record<string, unknown> = {};
  for (const pair of args.positionals) {
    const eq = pair.indexOf('=');
    if (eq <= 0) throw new UsageError(`expected FIELD=VALUE, got '${pair}'`);
    const raw = pair.slice(eq + 1);
    let value: unknown = raw;
    try {
      value = JSON.parse(raw);
    } catch {
      // a plain string such as 64Mi
    }
    body[pair.slice(0, eq)] = value;
  }
  return body;
}

function labelPairs(raw: string | undefined, flag: string): Record<string, string> {
  if (!raw) return {};
  return Object.fromEntries(
    raw.split(',').map((pair) => {
      const [key, ...rest] = pair.split('=');
      if (!key || rest.length === 0)
        throw new UsageError(`--${flag} expects key=value[,key=value], got '${pair}'`);
      return [key, rest.join('=')];
    }),
  );
}

export const migrationConfigShow: Command = {
  name: 'migration-config-show',
  usage: 'migration-config-show',
  summary: 'Show the cluster migration config and its defaults',
  options: {},
  async run(_args, conn) {
    const { config, defaults } = await apiRequest<{
      config: Record<string, unknown>;
      defaults: Record<string, unknown>;
    }>(conn, 'GET', '/v1/migration-config');
    console.log(
      table(
        ['Field', 'Value', 'Default'],
        Object.keys(defaults).map((k) => [k, String(config[k]), String(defaults[k])]),
      ),
    );
  },
};

export const migrationConfigSet: Command = {
  name: 'migration-config-set',
  usage: 'migration-config-set [FIELD=VALUE ...]   (fields left out return to their defaults)',
  summary:
    'Replace the cluster migration config, e.g. parallelMigrationsPerCluster=3 bandwidthPerMigration=64Mi resiliencePolicy=ha-only',
  options: {},
  async run(args, conn) {
    const { config } = await apiRequest<{ config: Record<string, unknown> }>(
      conn,
      'PUT',
      '/v1/migration-config',
      assignments(args),
    );
    console.log(JSON.stringify(config, null, 2));
  },
};

export const migrationPolicyCreate: Command = {
  name: 'migration-policy-create',
  usage:
    'migration-policy-create [--guest-labels k=v,...] [--project-labels k=v,...] [--convergence TYPE] [--allow-post-copy] [--bandwidth-mbps N] [--encryption] [--file POLICY.json] <NAME>',
  summary: 'Create a migration policy selecting guests by labels (or from a JSON file)',
  options: {
    'guest-labels': { type: 'string' },
    'project-labels': { type: 'string' },
    convergence: { type: 'string' },
    'allow-post-copy': { type: 'boolean' },
    'bandwidth-mbps': { type: 'string' },
    encryption: { type: 'boolean' },
    file: { type: 'string' },
  },
  async run(args, conn) {
    const name = onePositional(args, 'NAME');
    const file = stringOption(args, 'file');
    const fromFile = file ? (JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>) : {};
    const mbps = stringOption(args, 'bandwidth-mbps');
    const body = {
      ...fromFile,
      name,
      selectors: {
        guestLabels: labelPairs(stringOption(args, 'guest-labels'), 'guest-labels'),
        projectLabels: labelPairs(stringOption(args, 'project-labels'), 'project-labels'),
        ...((fromFile.selectors as object | undefined) ?? {}),
      },
      ...(stringOption(args, 'convergence') ? { convergence: stringOption(args, 'convergence') } : {}),
      ...(args.values['allow-post-copy'] ? { overrides: { allowPostCopy: true } } : {}),
      ...(mbps ? { bandwidth: { mode: 'custom', mbps: Number(mbps) } } : {}),
      ...(args.values.encryption ? { encryption: true } : {}),
    };
    const policy = await apiRequest(conn, 'POST', '/v1/migration-policies', body);
    console.log(JSON.stringify(policy, null, 2));
  },
};

export const migrationPolicyList: Command = {
  name: 'migration-policy-list',
  usage: 'migration-policy-list',
  summary: 'List migration policies',
  options: {},
  async run(_args, conn) {
    const policies = await apiAllPages<{
      name: string;
      convergence: string;
      selectors: { guestLabels: Record<string, string>; projectLabels: Record<string, string> };
    }>(conn, '/v1/migration-policies');
    const labels = (l: Record<string, string>) =>
      Object.entries(l)
        .map(([k, v]) => `${k}=${v}`)
        .join(',');
    console.log(
      table(
        ['Name', 'Convergence', 'Guest labels', 'Project labels'],
        policies.map((p) => [
          p.name,
          p.convergence,
          labels(p.selectors.guestLabels),
          labels(p.selectors.projectLabels),
        ]),
      ),
    );
  },
};

export const migrationPolicyShow: Command = {
  name: 'migration-policy-show',
  usage: 'migration-policy-show <NAME>',
  summary: 'Show a migration policy',
  options: {},
  async run(args, conn) {
    const name = onePositional(args, 'NAME');
    console.log(
      JSON.stringify(
        await apiRequest(conn, 'GET', `/v1/migration-policies/${encodeURIComponent(name)}`),
        null,
        2,
      ),
    );
  },
};

export const migrationPolicyDelete: Command = {
  name: 'migration-policy-delete',
  usage: 'migration-policy-delete <NAME>',
  summary: 'Delete a migration policy',
  options: {},
  async run(args, conn) {
    const name = onePositional(args, 'NAME');
    await apiRequest(conn, 'DELETE', `/v1/migration-policies/${encodeURIComponent(name)}`);
    console.log(`migration policy ${name} deleted`);
  },
};

export const serverMigrationPolicy: Command = {
  name: 'server-migration-policy',
  usage: 'server-migration-policy <ID>',
  summary: 'Which migration policy applies to a server, why, and the effective settings',
  options: {},
  async run(args, conn) {
    const id = onePositional(args, 'ID');
    const res = await apiRequest<{
      policy: string | null;
      explanation: string[];
      settings: { sources: Record<string, string> } & Record<string, unknown>;
    }>(conn, 'GET', `/v1/servers/${encodeURIComponent(id)}/migration-policy`);
    console.log(`policy: ${res.policy ?? '(none: cluster defaults)'}`);
    for (const line of res.explanation) console.log(`  ${line}`);
    console.log(
      table(
        ['Setting', 'Value', 'From'],
        Object.entries(res.settings.sources).map(([k, from]) => [k, JSON.stringify(res.settings[k]), from]),
      ),
    );
  },
};

export const migrationForceComplete: Command = {
  name: 'migration-force-complete',
  usage: 'migration-force-complete <ID>',
  summary: 'Make a running migration finish: post-copy when allowed, else pause the guest for the final copy',
  options: {},
  async run(args, conn) {
    const id = onePositional(args, 'ID');
    const migration = await apiRequest<{ events: { type: string; data: { effect?: string } | null }[] }>(
      conn,
      'POST',
      `/v1/migrations/${encodeURIComponent(id)}/force-complete`,
    );
    // The request's own event says what it does: post-copy, or pausing the guest.
    const requested = migration.events.filter((e) => e.type === 'force_complete_requested').at(-1);
    console.log(requested?.data?.effect ?? `force-complete of migration ${id} requested`);
  },
};
