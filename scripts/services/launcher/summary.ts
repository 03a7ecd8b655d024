import path from 'node:path';
import type { ServerSummary } from './api-client.ts';
import type { LaunchContext } from './context.ts';
import type { Infrastructure } from './infrastructure.ts';

export interface StackSummary {
  infra: Infrastructure;
  apiUrl: string | null;
  apiTokenFile: string | null;
  agentUrls: Record<string, string>;
  guests: ServerSummary[];
}

/** The addresses a developer needs, printed once the stack is up. */
export function formatSummary(ctx: LaunchContext, summary: StackSummary): string {
  const { infra } = summary;
  const rows: [string, string][] = [
    ['Temporal gRPC', `${infra.temporal.address} (namespace ${infra.temporal.namespace})`],
    ['Temporal Web UI', infra.temporal.uiUrl ?? '(not started here)'],
    ['PostgreSQL', withoutPassword(infra.databaseUrl)],
    ['etcd', infra.etcdEndpoints.join(', ')],
    ['InfluxDB', infra.influxUrl],
    ['API', summary.apiUrl ?? '(not started: api/main.ts missing)'],
    ...Object.entries(summary.agentUrls).map(([name, url]): [string, string] => [`agent ${name}`, url]),
    ...summary.guests.map((g): [string, string] => [
      `guest ${g.name}`,
      `${g.status}, heartbeat ${g.live?.heartbeat?.counter ?? '-'}`,
    ]),
    ['API token', summary.apiTokenFile ? displayPath(summary.apiTokenFile) : '(from API_TOKEN)'],
    ['data', displayPath(ctx.layout.root)],
    ['logs', `${displayPath(ctx.layout.logs)}/<name>.log`],
  ];
  const width = Math.max(...rows.map(([label]) => label.length));
  return [
    '',
    'vmmig dev stack is up:',
    ...rows.map(([label, value]) => `  ${label.padEnd(width)}  ${value}`),
    '',
    `Try: ${cliHint(ctx, summary)}host-list`,
    'Ctrl-C stops everything.',
    '',
  ].join('\n');
}

/** Relative to the working directory when inside it, else absolute. */
function displayPath(target: string): string {
  const relative = path.relative(process.cwd(), target);
  if (relative === '') return '.';
  return relative.startsWith('..') ? target : relative;
}

/** `npx vmctl ` with the environment the CLI needs when the stack is not on its defaults. */
function cliHint(ctx: LaunchContext, summary: StackSummary): string {
  const vars: string[] = [];
  if (summary.apiUrl && summary.apiUrl !== 'http://127.0.0.1:8080') vars.push(`API_URL=${summary.apiUrl}`);
  if (!summary.apiTokenFile) vars.push('API_TOKEN=<the API_TOKEN of this stack>');
  else if (ctx.env.DATA_DIR) vars.push(`DATA_DIR=${ctx.env.DATA_DIR}`);
  return [...vars, 'npx vmctl '].join(' ');
}

/** A DATABASE_URL from the environment may carry a password: never print it. */
function withoutPassword(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    return parsed.toString();
  } catch {
    return url;
  }
}
