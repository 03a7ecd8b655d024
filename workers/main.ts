import { agentCredentials } from '../activities/agent-credentials.ts';
import { Client, Connection } from '@temporalio/client';
import { NativeConnection } from '@temporalio/worker';
import { alertMetricsReader } from '../activities/alert-metrics.ts';
import { HostLiveness } from '../activities/host-liveness.ts';
import { createActivities } from '../activities/index.ts';
import { connectDb } from '../db/client.ts';
import {
  etcdSettings,
  hostDownTimings,
  influxSettings,
  requiredSetting,
  temporalSettings,
} from '../domain/config.ts';
import { HostWatch } from './host-watch.ts';
import { temporalConnectionOptions } from './temporal-connection.ts';
import { createWorker } from './worker.ts';

const temporal = temporalSettings(process.env);
const db = connectDb(requiredSetting(process.env, 'DATABASE_URL'));
const liveness = new HostLiveness(etcdSettings(process.env));
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
    agentCredentials: agentCredentials(db.db, requiredSetting(process.env, 'AGENT_CREDENTIAL_KEY')),
    liveness,
    temporal: new Client({ connection: clientConnection, namespace: temporal.namespace }),
    metrics: alertMetricsReader(influxSettings(process.env)),
  }),
  db: db.db,
});

// Every worker process watches the hosts' leases; the runs' ids keep two watchers from acting twice.
const hostWatch = new HostWatch({
  etcd: etcdSettings(process.env),
  temporal: new Client({ connection: clientConnection, namespace: temporal.namespace }),
  taskQueue: temporal.taskQueue,
  log: (line) => console.log(line),
  timings: hostDownTimings(process.env),
});
await hostWatch.start();

for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => worker.shutdown());
console.log(
  `worker polling task queue '${temporal.taskQueue}' on ${temporal.address} (${temporal.namespace})`,
);
await worker.run();
await hostWatch.stop();
await Promise.all([connection.close(), clientConnection.close(), db.close()]);
liveness.close();
console.log('worker stopped');
