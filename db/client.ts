import { drizzle, type NodePgDatabase } from 'drizzle-orm/node-postgres';
import pg from 'pg';
import * as schema from './schema.ts';

export type Db = NodePgDatabase<typeof schema>;

export interface DbHandle {
  db: Db;
  close(): Promise<void>;
}

export function connectDb(url: string, max = 10): DbHandle {
  const pool = new pg.Pool({ connectionString: url, max });
  // An idle client's connection error must not crash the process; the next query reconnects.
  pool.on('error', (err) => console.warn(`postgres pool: ${err.message}`));
  return { db: drizzle(pool, { schema }), close: () => pool.end() };
}
