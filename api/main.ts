import { agentCredentials } from '../activities/agent-credentials.ts';
import { serve } from '@hono/node-server';
import { Client, Connection } from '@temporalio/client';
import { alertMetricsReader } from '../activities/alert-metrics.ts';
import { HostLiveness } from '../activities/host-liveness.ts';
import { listMigrationAlerts } from '../db/alert-store.ts';
import { connectDb } from '../db/client.ts';
import {
  DEFAULTS,
  etcdSettings,
  influxSettings,
  intSetting,
  requiredSetting,
  temporalSettings,
} from '../domain/config.ts';
import { reconcileAlertSchedules } from './alert-schedules.ts';
import { createApp } from './app.ts';
import { temporalConnectionOptions } from '../workers/temporal-connection.ts';
import { startPendingReaper } from './pending-reaper.ts';

const env = process.env;
const temporalConf = temporalSettings(env);
const db = connectDb(requiredSetting(env, 'DATABASE_URL'));
const connection = await Connection.connect(await temporalConnectionOptions(temporalConf));
const liveness = new HostLiveness(etcdSettings(env));
const temporal = new Client({ connection, namespace: temporalConf.namespace });
const agentCredentialKey = requiredSetting(env, 'AGENT_CREDENTIAL_KEY');
const app = createApp({
  db: db.db,
  temporal,
  taskQueue: temporalConf.taskQueue,
  liveness,
  agentCredentials: agentCredentials(db.db, agentCredentialKey),
  agentCredentialKey,
  apiToken: requiredSetting(env, 'API_TOKEN'),
  metrics: alertMetricsReader(influxSettings(env)),
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

const hostname = env.API_HOST ?? DEFAULTS.apiHost;
const port = intSetting(env, 'API_PORT', DEFAULTS.apiPort, 1);
const server = serve({ fetch: app.fetch, hostname, port }, () =>
  console.log(`API listening on http://${hostname}:${port}`),
);

// A request cut off between recording a migration and starting its workflow leaves a `pending` row.
const stopReaper = startPendingReaper(db.db, temporal);

async function shutdown() {
  stopReaper();
  server.close();
  liveness.close();
  await connection.close();
  await db.close();
  console.log('API stopped');
  process.exit(0);
}
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => void shutdown());
