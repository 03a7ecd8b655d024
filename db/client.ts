import { readFileSync } from 'node:fs';
import { drizzle, type NodePgDatabase } from 'drizzle-orm/node-postgres';
import pg from 'pg';
import { databaseSettingsFromUrl, postgresSsl, type DatabaseSettings } from '../domain/config.ts';
import * as schema from './schema.ts';

export type Db = NodePgDatabase<typeof schema>;

export interface DbHandle {
  db: Db;
  close(): Promise<void>;
}

/** Bounds on every call, so an unreachable or stuck PostgreSQL fails requests quickly instead of hanging them. */
export interface DbPoolOptions {
  max?: number;
  /** Giving up on opening a connection (and on waiting for a free one in the pool). */
  connectTimeoutMs?: number;
  /** Server side: PostgreSQL cancels a statement running longer (lock waits included). */
  statementTimeoutMs?: number;
  /** Client side: a query whose answer has not come back by then fails, even if the server never replies. */
  queryTimeoutMs?: number;
  /** An unused connection is closed after this long. */
  idleTimeoutMs?: number;
}

export const DEFAULT_DB_POOL_OPTIONS: Required<DbPoolOptions> = {
  max: 10,
  connectTimeoutMs: 5_000,
  statementTimeoutMs: 15_000,
  queryTimeoutMs: 15_000,
  idleTimeoutMs: 30_000,
};

/**
 * A pool on DATABASE_URL's settings (domain/config/database.ts), TLS as its sslmode says; a bare URL (tests,
 * tools) is read the same way, without TLS files.
 */
export function connectDb(database: string | DatabaseSettings, options: DbPoolOptions = {}): DbHandle {
  const o = { ...DEFAULT_DB_POOL_OPTIONS, ...options };
  const settings = typeof database === 'string' ? databaseSettingsFromUrl(database) : database;
  const pool = new pg.Pool({
    connectionString: settings.url,
    // Always given, so node-postgres never falls back to PGSSLMODE from the environment.
    ssl: postgresSsl(settings, readFileSync),
    max: o.max,
    connectionTimeoutMillis: o.connectTimeoutMs,
    statement_timeout: o.statementTimeoutMs,
    query_timeout: o.queryTimeoutMs,
    idleTimeoutMillis: o.idleTimeoutMs,
  });
  // An idle client's connection error must not crash the process; the next query reconnects.
  pool.on('error', (err) => console.warn(`postgres pool: ${err.message}`));
  return { db: drizzle(pool, { schema }), close: () => pool.end() };
}
