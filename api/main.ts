import { agentCredentials } from '../activities/agent-credentials.ts';
import { serve } from '@hono/node-server';
import { Client, Connection } from '@temporalio/client';
import { alertMetricsReader } from '../activities/alert-metrics.ts';
import { HostLiveness } from '../activities/host-liveness.ts';
import { listMigrationAlerts } from '../db/alert-store.ts';
import { connectDb } from '../db/client.ts';
import { MigrationChanges } from '../db/migration-changes.ts';
import { readApiConfig } from '../domain/config.ts';
import { configOrExit } from '../domain/config/startup.ts';
import { reconcileAlertSchedules } from './alert-schedules.ts';
import { createApp } from './app.ts';
import { temporalConnectionOptions } from '../workers/temporal-connection.ts';
import { startPendingReaper } from './pending-reaper.ts';

// Everything is checked before anything connects: a bad environment stops here, naming every variable.
const config = configOrExit('api', readApiConfig, process.env);
const temporalConf = config.temporal;
const db = connectDb(config.database);
const connection = await Connection.connect(await temporalConnectionOptions(temporalConf));
const liveness = new HostLiveness(config.etcd);
const migrationChanges = new MigrationChanges(config.database);
await migrationChanges.start();
const temporal = new Client({ connection, namespace: temporalConf.namespace });
const { agentCredentialKey } = config;
const app = createApp({
  db: db.db,
  temporal,
  taskQueue: temporalConf.taskQueue,
  liveness,
  agentCredentials: agentCredentials(db.db, agentCredentialKey),
  agentCredentialKey,
  apiToken: config.apiToken,
  metrics: alertMetricsReader(config.influx),
  migrationChanges,
});

// Rules and their schedules are repaired before the API answers: a rule without its schedule gets one, a
// rule's schedule without its rule goes.
const repair = await reconcileAlertSchedules(
  { temporal, taskQueue: temporalConf.taskQueue },
  await listMigrationAlerts(db.db),
);
for (const [what, names] of Object.entries(repair)) {
  if (names.length > 0) console.log(`migration-alert schedules ${what}: ${names.join(', ')}`);
}

const { host: hostname, port } = config;
const server = serve({ fetch: app.fetch, hostname, port }, () =>
  console.log(`API listening on http://${hostname}:${port}`),
);

// A request cut off between recording a migration and starting its workflow leaves a `pending` row.
const stopReaper = startPendingReaper(db.db, temporal);

async function shutdown() {
  stopReaper();
  server.close();
  liveness.close();
  await migrationChanges.close();
  await connection.close();
  await db.close();
  console.log('API stopped');
  process.exit(0);
}
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => void shutdown());
