import path from 'node:path';
import type { EtcdServer } from '../../scripts/services/etcd.ts';
import type { InfluxServer } from '../../scripts/services/influx.ts';
import { ensureDatabase } from '../../scripts/services/postgres-database.ts';
import type { PostgresServer } from '../../scripts/services/postgres.ts';
import { startStackServers } from '../../scripts/services/stack-servers.ts';
import type { TemporalServer } from '../../scripts/services/temporal.ts';
import { migrateDatabase } from '../../db/migrate.ts';

export interface BenchServers {
  temporal: TemporalServer;
  postgres: PostgresServer;
  etcd: EtcdServer;
  /** Only when asked for (the fleet benchmark's metrics). */
  influx: InfluxServer | undefined;
  /** The orchestrator's database (schema applied). */
  databaseUrl: string;
  stop(): Promise<void>;
}

/**
 * Real Temporal (dev server, SQLite file, no UI), PostgreSQL (durable, as `npm start` runs it), etcd and, when
 * asked for, InfluxDB 1.x, all
 * on free loopback ports with their data and logs under `root` (scripts/services/stack-servers.ts).
 */
export async function startBenchServers(
  root: string,
  options: { influx?: boolean; temporalInMemory?: boolean } = {},
): Promise<BenchServers> {
  const servers = await startStackServers({
    root,
    // In memory, Temporal writes no file: a diagnostic of how much of a figure is its persistence.
    temporal: options.temporalInMemory
      ? { headless: true }
      : { dbFile: path.join(root, 'temporal', 'temporal.db'), headless: true },
    postgres: {},
    etcd: {},
    influx: options.influx ? {} : undefined,
  });
  try {
    const databaseUrl = await ensureDatabase(servers.postgres.url, 'vmmig');
    await migrateDatabase(databaseUrl);
    const { temporal, postgres, etcd, influx, stop } = servers;
    return { temporal, postgres, etcd, influx, databaseUrl, stop };
  } catch (error) {
    await servers.stop();
    throw error;
  }
}
