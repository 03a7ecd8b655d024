import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { migrate } from 'drizzle-orm/node-postgres/migrator';
import { readMigrateConfig, type DatabaseSettings } from '../domain/config.ts';
import { configOrExit } from '../domain/config/startup.ts';
import { connectDb } from './client.ts';

export const migrationsFolder = path.join(path.dirname(fileURLToPath(import.meta.url)), 'migrations');

/** Applies the committed SQL migrations; already-applied ones are skipped, so running it twice is safe. */
export async function migrateDatabase(
  database: string | DatabaseSettings,
  folder = migrationsFolder,
): Promise<void> {
  // Schema changes may rewrite whole tables: no statement or query limit here, only the connect timeout.
  const handle = connectDb(database, { max: 1, statementTimeoutMs: 0, queryTimeoutMs: 0 });
  try {
    await migrate(handle.db, { migrationsFolder: folder });
  } finally {
    await handle.close();
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { database } = configOrExit('migrate', readMigrateConfig, process.env);
  await migrateDatabase(database);
  console.log('database schema is up to date');
}
