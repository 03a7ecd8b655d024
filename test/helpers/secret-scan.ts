import type { Client } from '@temporalio/client';
import pg from 'pg';
import { assertNoSecrets, rememberedSecretCount } from './secret-ledger.ts';

export interface ScannedStack {
  databaseUrl: string;
  temporal: Client;
  taskQueue: string;
  agentLogs: Map<string, string[]>;
}

/**
 * Before a stack goes: no secret the file created in its agents' logs, in any row of its database (events,
 * migrations, hosts, tokens: stored hashed, so never the token itself) or in its workflows' histories (inputs,
 * results, failures).
 */
export async function assertStackHoldsNoSecrets(stack: ScannedStack): Promise<void> {
  if (rememberedSecretCount() === 0) return;
  for (const [host, lines] of stack.agentLogs) assertNoSecrets(`agent ${host}'s log`, lines.join('\n'));

  const client = new pg.Client({ connectionString: stack.databaseUrl });
  await client.connect();
  try {
    const tables = await client.query<{ name: string }>(
      `select table_name as name from information_schema.tables where table_schema = 'public' and table_type = 'BASE TABLE'`,
    );
    for (const { name } of tables.rows) {
      const rows = await client.query<{ row: string }>(`select t::text as row from "${name}" t`);
      for (const { row } of rows.rows) assertNoSecrets(`table ${name}`, row);
    }
  } finally {
    await client.end();
  }

  for await (const run of stack.temporal.workflow.list({ query: `TaskQueue = '${stack.taskQueue}'` })) {
    const history = await stack.temporal.workflow.getHandle(run.workflowId, run.runId).fetchHistory();
    assertNoSecrets(`the history of ${run.workflowId}`, JSON.stringify(history, payloadsAsText));
  }
}

/** Payloads are JSON in bytes: read them as text, or a secret in one would not show. */
function payloadsAsText(_key: string, value: unknown): unknown {
  if (value instanceof Uint8Array) return Buffer.from(value).toString('utf8');
  // A Buffer has become {type: 'Buffer', data: [...]} through its own toJSON before the replacer sees it.
  const json = value as { type?: unknown; data?: unknown } | null;
  if (json?.type === 'Buffer' && Array.isArray(json.data))
    return Buffer.from(json.data as number[]).toString('utf8');
  return value;
}
