import type { Client } from '@temporalio/client';
import type { Db } from '../db/client.ts';
import type { LiveMigrationTimings } from '../domain/live-migration.ts';

export interface ApiDeps {
  db: Db;
  temporal: Client;
  taskQueue: string;
  liveness: { onlineHostIds(): Promise<Set<string>> };
  agentToken: string;
  apiToken: string;
  /** Defaults to DEFAULT_TIMINGS; tests pass small ones. */
  liveMigrationTimings?: LiveMigrationTimings;
}
