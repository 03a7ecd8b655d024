import { agentCredentials } from '../activities/agent-credentials.ts';
import { Client, Connection } from '@temporalio/client';
import { NativeConnection } from '@temporalio/worker';
import { alertMetricsReader } from '../activities/alert-metrics.ts';
import { HostLiveness } from '../activities/host-liveness.ts';
import { createActivities } from '../activities/index.ts';
import { connectDb } from '../db/client.ts';
import { findHost } from '../db/inventory.ts';
import { readWorkerConfig } from '../domain/config.ts';
import { configOrExit } from '../domain/config/startup.ts';
import { HostWatch } from './host-watch.ts';
import { applyRetention } from './retention-schedule.ts';
import { temporalConnectionOptions } from './temporal-connection.ts';
import { createWorker } from './worker.ts';

// Everything is checked before anything connects: a bad environment stops here, naming every variable.
const config = configOrExit('worker', readWorkerConfig, process.env);
const { temporal } = config;
const db = connectDb(config.database);
const liveness = new HostLiveness(config.etcd);
const connectionOptions = await temporalConnectionOptions(temporal);
const connection = await NativeConnection.connect(connectionOptions);
// Activities talk to the slots workflow through an ordinary client.
const clientConnection = await Connection.connect(connectionOptions);
const worker = await createWorker({
  connection,
  namespace: temporal.namespace,
  taskQueue: temporal.taskQueue,
  activities: createActivities({
    db: db.db,
    agentCredentials: agentCredentials(db.db, config.agentCredentialKey),
    liveness,
    temporal: new Client({ connection: clientConnection, namespace: temporal.namespace }),
    metrics: alertMetricsReader(config.influx),
  }),
  db: db.db,
});

// Every worker process watches the hosts' leases; the runs' ids keep two watchers from acting twice.
const hostWatch = new HostWatch({
  etcd: config.etcd,
  temporal: new Client({ connection: clientConnection, namespace: temporal.namespace }),
  taskQueue: temporal.taskQueue,
  log: (line) => console.log(line),
  timings: config.hostDown,
  hostName: async (hostId) => (await findHost(db.db, hostId))?.name,
});
await hostWatch.start();
await applyRetention(
  {
    temporal: new Client({ connection: clientConnection, namespace: temporal.namespace }),
    taskQueue: temporal.taskQueue,
    log: (line) => console.log(line),
  },
  config.retentionDays,
);

for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => worker.shutdown());
console.log(
  `worker polling task queue '${temporal.taskQueue}' on ${temporal.address} (${temporal.namespace})`,
);
await worker.run();
await hostWatch.stop();
await Promise.all([connection.close(), clientConnection.close(), db.close()]);
liveness.close();
console.log('worker stopped');
