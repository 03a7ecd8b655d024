import path from 'node:path';
import { startEtcd, type EtcdServer } from '../../scripts/services/etcd.ts';
import { ensureDatabase } from '../../scripts/services/postgres-database.ts';
import { startPostgres, type PostgresServer } from '../../scripts/services/postgres.ts';
import { findTemporalCli } from '../../scripts/services/temporal-cli.ts';
import { loadTemporalDevConfig } from '../../scripts/services/temporal-config.ts';
import { startTemporal, type TemporalServer } from '../../scripts/services/temporal.ts';
import { migrateDatabase } from '../../db/migrate.ts';

export interface BenchServers {
  temporal: TemporalServer;
  postgres: PostgresServer;
  etcd: EtcdServer;
  /** The orchestrator's database (schema applied). */
  databaseUrl: string;
  stop(): Promise<void>;
}

/**
 * Real Temporal (dev server, SQLite file), PostgreSQL (durable, as `npm start` runs it) and etcd, all
 * on free loopback ports with their data and logs under `root`. Started in parallel; if one fails the
 * others are stopped before the error is rethrown.
 */
export async function startBenchServers(root: string): Promise<BenchServers> {
  const logs = path.join(root, 'logs');
  const temporalConfig = loadTemporalDevConfig();
  const results = await Promise.allSettled([
    startTemporal({
      cli: findTemporalCli(),
      dbFile: path.join(root, 'temporal', 'temporal.db'),
      namespace: temporalConfig.namespace,
      logFile: path.join(logs, 'temporal.log'),
      logLevel: temporalConfig.logLevel,
      searchAttributes: temporalConfig.searchAttributes,
      dynamicConfig: temporalConfig.dynamicConfig,
      headless: true,
    }),
    startPostgres({ dir: path.join(root, 'postgres'), logFile: path.join(logs, 'postgres.log') }),
    startEtcd({ dir: path.join(root, 'etcd'), logFile: path.join(logs, 'etcd.log') }),
  ] as const);
  const stopAll = async () => {
    // Reverse order of dependence does not matter here: nothing of ours talks to them any more.
    await Promise.allSettled(results.map((r) => (r.status === 'fulfilled' ? r.value.stop() : undefined)));
  };
  const [temporal, postgres, etcd] = results;
  if (temporal.status !== 'fulfilled' || postgres.status !== 'fulfilled' || etcd.status !== 'fulfilled') {
    await stopAll();
    throw (results.find((r) => r.status === 'rejected') as PromiseRejectedResult).reason;
  }
  try {
    const databaseUrl = await ensureDatabase(postgres.value.url, 'vmmig');
    await migrateDatabase(databaseUrl);
    return {
      temporal: temporal.value,
      postgres: postgres.value,
      etcd: etcd.value,
      databaseUrl,
      stop: stopAll,
    };
  } catch (error) {
    await stopAll();
    throw error;
  }
}
