import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { migrate } from 'drizzle-orm/node-postgres/migrator';
import { requiredSetting } from '../domain/config.ts';
import { connectDb } from './client.ts';

export const migrationsFolder = path.join(path.dirname(fileURLToPath(import.meta.url)), 'migrations');

/** Applies the committed SQL migrations; already-applied ones are skipped, so running it twice is safe. */
export async function migrateDatabase(url: string, folder = migrationsFolder): Promise<void> {
  // Schema changes may rewrite whole tables: no statement or query limit here, only the connect timeout.
  const handle = connectDb(url, { max: 1, statementTimeoutMs: 0, queryTimeoutMs: 0 });
  try {
    await migrate(handle.db, { migrationsFolder: folder });
  } finally {
    await handle.close();
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const url = requiredSetting(process.env, 'DATABASE_URL');
  await migrateDatabase(url);
  console.log('database schema is up to date');
}
