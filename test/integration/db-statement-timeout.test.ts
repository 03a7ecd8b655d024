import { sql } from 'drizzle-orm';
import { describe, expect, it, inject } from 'vitest';
import { connectDb } from '../../db/client.ts';

function messages(err: unknown): string {
  const all: string[] = [];
  for (let e: unknown = err; e instanceof Error; e = e.cause) all.push(e.message);
  return all.join(' / ');
}

async function failureOf(options: Parameters<typeof connectDb>[1]): Promise<{ error: unknown; ms: number }> {
  const handle = connectDb(inject('postgresAdminUrl'), options);
  const began = Date.now();
  try {
    const error = await handle.db.execute(sql`select pg_sleep(3)`).then(
      () => null,
      (err: unknown) => err,
    );
    return { error, ms: Date.now() - began };
  } finally {
    await handle.close();
  }
}

describe('database statement and query timeouts on a real PostgreSQL', () => {
  it('has PostgreSQL cancel a statement running past the statement timeout', async () => {
    const { error, ms } = await failureOf({ statementTimeoutMs: 300, queryTimeoutMs: 0 });
    expect(messages(error)).toMatch(/statement timeout/);
    expect(ms).toBeLessThan(2_000);
  });

  it('gives up on a query whose answer does not come back within the query timeout', async () => {
    const { error, ms } = await failureOf({ statementTimeoutMs: 0, queryTimeoutMs: 300 });
    expect(messages(error)).toMatch(/Query read timeout/);
    expect(ms).toBeLessThan(2_000);
  });
});
