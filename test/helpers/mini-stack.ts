import { setTimeout as sleep } from 'node:timers/promises';
import { randomBytes, randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { serve } from '@hono/node-server';
import { Client, Connection } from '@temporalio/client';
import { DefaultLogger, NativeConnection, Runtime, type Worker } from '@temporalio/worker';
import { inject } from 'vitest';
import { influxqlReader } from '../../activities/alert-metrics.ts';
import { HostLiveness } from '../../activities/host-liveness.ts';
import { createActivities, type Activities } from '../../activities/index.ts';
import { agentCredentials } from '../../activities/agent-credentials.ts';
import { loadOrCreateHostId } from '../../agent/host-id.ts';
import { hostCredential } from '../../domain/host-credential.ts';
import { defaultTlsDir } from '../../agent/settings.ts';
import { assertNoSecrets, rememberPrivateKeys, rememberSecret } from './secret-ledger.ts';
import { assertStackHoldsNoSecrets } from './secret-scan.ts';
import { startAgent, type RunningAgent } from '../../agent/start-agent.ts';
import type { AgentOptions } from '../../agent/settings.ts';
import type { SimHostProfile } from '../../agent/drivers/sim.ts';
import { createApp } from '../../api/app.ts';
import type { AlertCycleTimings } from '../../domain/alert-cycle.ts';
import { DEFAULT_TIMINGS, type LiveMigrationTimings } from '../../domain/live-migration.ts';
import { HostWatch } from '../../workers/host-watch.ts';
import { createWorker } from '../../workers/worker.ts';
import type { HostDownTimings } from '../../domain/host-down-timing.ts';
import { createTestDatabase, type TestDatabase } from './database.ts';
import { waitFor } from './wait.ts';

// Worker state chatter drowns test output; warnings and errors still show. Once per test process.
try {
  Runtime.install({ logger: new DefaultLogger('WARN') });
} catch {
  // already installed by another helper in this process
}

/** Small timers so a test exercises every path in seconds rather than minutes. */
export const TEST_TIMINGS: LiveMigrationTimings = {
  ...DEFAULT_TIMINGS,
  pollIntervalMs: 200,
  progressSaveIntervalMs: 1_000,
  activityHeartbeatTimeoutMs: 5_000,
  aliveCheckTimeoutMs: 15_000,
  precheckAnswerTimeoutMs: 15_000,
};

export interface HostPlan {
  name: string;
  driver?: 'sim' | 'qemu';
  sim?: Partial<SimHostProfile>;
  networks?: string[];
  sharedStorageDir?: string;
  memoryMb?: number;
  cpus?: number;
  /** false: the agent holds no etcd lease, so the host is offline. */
  liveness?: boolean;
  /** The host's address on a dedicated migration network. */
  migrationAddress?: string;
  /** The health lease's TTL (default 5 s). */
  ttlSeconds?: number;
  /** The agent's own etcd endpoints (a test's cuttable proxy), instead of the stack's. */
  etcdEndpoints?: string[];
  /**
   * true: the real enrolment (a one-time token made through the API, traded by the agent for its credential,
   * stored in its dir). Default: the stack hands the agent its derived credential and registers it as admin.
   */
  enrol?: boolean;
}

export interface ApiResponse<T = Record<string, unknown>> {
  status: number;
  body: T;
}

export interface MiniStack {
  db: TestDatabase;
  apiUrl: string;
  apiToken: string;
  /** AGENT_CREDENTIAL_KEY of this stack's API and worker: each host's credential is derived from it. */
  agentCredentialKey: string;
  /** AGENT_PEER_TOKEN of this stack's agents (accepted on the peer routes only). */
  peerToken: string;
  /** The credential of the host of this name (as the stack's API derives it: generation 1). */
  agentCredential(name: string): string;
  temporal: Client;
  taskQueue: string;
  /** This stack's `migration-lock` singleton. */
  lockWorkflowId: string;
  etcdPrefix: string;
  agents: Map<string, RunningAgent>;
  agentLogs: Map<string, string[]>;
  dir: string;
  api<T = Record<string, unknown>>(
    method: string,
    path: string,
    body?: unknown,
    token?: string,
  ): Promise<ApiResponse<T>>;
  startWorker(wrap?: (activities: Activities) => Activities): Promise<void>;
  /** Starts a host's agent again on its own dir (so with its host id), after its `stop`. */
  restartAgent(name: string): Promise<RunningAgent>;
  stopWorker(): Promise<void>;
  stop(): Promise<void>;
}

export interface MiniStackOptions {
  hosts: HostPlan[];
  timings?: LiveMigrationTimings;
  /** false: the test starts its own worker(s). */
  worker?: boolean;
  /** Agents write their usage to this InfluxDB database (the test setup's server), and alert cycles read it. */
  metrics?: { database: string; intervalSeconds: number };
  alertCycleTimings?: AlertCycleTimings;
  /** Watch the hosts' health keys as a worker process does, starting hostDown and hostReturn runs. */
  hostWatch?: HostDownTimings;
}

/** How long a stack's stop waits for its worker's activities to end. */
const WORKER_STOP_WAIT_MS = 30_000;

export async function startMiniStack(options: MiniStackOptions): Promise<MiniStack> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'vmmig-stack-'));
  const db = await createTestDatabase(inject('postgresAdminUrl'));
  const namespace = inject('temporalNamespace');
  const address = inject('temporalAddress');
  const etcdEndpoints = inject('etcdEndpoints');
  const etcdPrefix = `test-${randomBytes(4).toString('hex')}`;
  const apiToken = randomUUID();
  const agentCredentialKey = randomBytes(32).toString('base64url');
  const peerToken = randomBytes(32).toString('base64url');
  rememberSecret('the bootstrap API token', apiToken);
  rememberSecret('AGENT_CREDENTIAL_KEY', agentCredentialKey);
  rememberSecret('the agent peer token', peerToken);
  await rememberPrivateKeys(defaultTlsDir(process.env));
  const credentials = agentCredentials(db.db, agentCredentialKey);
  const hostIds = new Map<string, string>();
  const enrolledDirs = new Map<string, string>();
  const agentCredential = (name: string): string => {
    const enrolledDir = enrolledDirs.get(name);
    if (enrolledDir) return readFileSync(path.join(enrolledDir, 'credential'), 'utf8').trim();
    const hostId = hostIds.get(name);
    if (!hostId) throw new Error(`no agent ${name}`);
    return hostCredential(agentCredentialKey, hostId, 1);
  };
  const taskQueue = `test-${randomUUID()}`;
  // The lock is a singleton per namespace; every stack shares the test server's, so each gets its own.
  const lockWorkflowId = `migration-lock-${taskQueue}`;
  const connection = await Connection.connect({ address });
  const temporal = new Client({ connection, namespace });
  const liveness = new HostLiveness({ endpoints: etcdEndpoints, prefix: etcdPrefix });
  const influxUrl = inject('influxUrl');
  const metrics = options.metrics
    ? influxqlReader({ url: influxUrl, database: options.metrics.database })
    : undefined;

  const app = createApp({
    db: db.db,
    temporal,
    taskQueue,
    liveness,
    agentCredentials: credentials,
    agentCredentialKey,
    apiToken,
    liveMigrationTimings: options.timings ?? TEST_TIMINGS,
    ...(metrics ? { metrics } : {}),
    ...(options.alertCycleTimings ? { alertCycleTimings: options.alertCycleTimings } : {}),
  });
  const server = serve({ fetch: app.fetch, hostname: '127.0.0.1', port: 0 });
  await new Promise<void>((resolve) => server.once('listening', resolve));
  const apiUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  let worker: { worker: Worker; running: Promise<void>; connection: NativeConnection } | undefined;
  const startWorker = async (wrap?: (activities: Activities) => Activities) => {
    const nativeConnection = await NativeConnection.connect({ address });
    const activities = createActivities({
      db: db.db,
      agentCredentials: credentials,
      liveness,
      temporal,
      migrationLockWorkflowId: lockWorkflowId,
      ...(metrics ? { metrics } : {}),
    });
    const w = await createWorker({
      connection: nativeConnection,
      namespace,
      taskQueue,
      activities: wrap ? wrap(activities) : activities,
      db: db.db,
    });
    worker = { worker: w, running: w.run(), connection: nativeConnection };
  };
  const stopWorker = async () => {
    if (!worker) return;
    const current = worker;
    worker = undefined;
    current.worker.shutdown();
    // A test's teardown must end: an activity that ignores the shutdown is left to the dying process.
    const stopped = await Promise.race([
      current.running.then(() => true),
      sleep(WORKER_STOP_WAIT_MS).then(() => false),
    ]);
    if (!stopped) console.warn(`mini-stack: the worker did not stop within ${WORKER_STOP_WAIT_MS} ms`);
    else await current.connection.close();
  };
  if (options.worker !== false) await startWorker();
  const hostWatch = options.hostWatch
    ? new HostWatch({
        etcd: { endpoints: etcdEndpoints, prefix: etcdPrefix },
        temporal,
        taskQueue,
        log: (line) => (process.env.DEBUG_HOST_WATCH ? console.log(line) : undefined),
        timings: options.hostWatch,
        migrationTimings: options.timings ?? TEST_TIMINGS,
      })
    : null;
  await hostWatch?.start();

  const api = async <T>(
    method: string,
    urlPath: string,
    body?: unknown,
    token = apiToken,
  ): Promise<ApiResponse<T>> => {
    const res = await fetch(`${apiUrl}${urlPath}`, {
      method,
      headers: {
        authorization: `Bearer ${token}`,
        ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
      },
      body: body !== undefined ? JSON.stringify(body) : undefined,
    });
    const text = await res.text();
    assertNoSecrets(`the answer ${res.status} to ${method} ${urlPath}`, text);
    const parsed = (text ? JSON.parse(text) : null) as T;
    // A token made now is in its own answer, once; from here on it is a secret like the others.
    const made = parsed as { token?: string; credential?: string } | null;
    rememberSecret(`a token made by ${method} ${urlPath}`, made?.token);
    rememberSecret(`a credential made by ${method} ${urlPath}`, made?.credential);
    return { status: res.status, body: parsed };
  };

  const agents = new Map<string, RunningAgent>();
  const agentLogs = new Map<string, string[]>();
  const agentOptionsByName = new Map<string, AgentOptions>();
  for (const plan of options.hosts) {
    const logs: string[] = [];
    agentLogs.set(plan.name, logs);
    // Test-only: the stack hands each agent its derived credential (and registers it with the admin token);
    // test/integration/host-credentials.test.ts covers the real enrolment.
    const agentDir = path.join(dir, 'agents', plan.name);
    let enrolmentToken: string | undefined;
    if (plan.enrol) {
      enrolledDirs.set(plan.name, agentDir);
      const made = await api<{ token: string }>('POST', '/v1/enrolment-tokens', { host: plan.name });
      if (made.status !== 201)
        throw new Error(`enrolment token: ${made.status} ${JSON.stringify(made.body)}`);
      enrolmentToken = made.body.token;
    } else {
      hostIds.set(plan.name, await loadOrCreateHostId(agentDir));
      rememberSecret(`the credential of ${plan.name}`, agentCredential(plan.name));
    }
    const agentOptions: AgentOptions = {
      name: plan.name,
      host: '127.0.0.1',
      port: 0,
      dir: agentDir,
      ...(plan.enrol ? {} : { token: agentCredential(plan.name) }),
      peerToken,
      driver: plan.driver ?? 'sim',
      sharedStorageDir: plan.sharedStorageDir ?? path.join(dir, 'shared'),
      guestImageDir: inject('guestImageDir'),
      migrationAddress: plan.migrationAddress ?? null,
      networks: plan.networks ?? ['default'],
      sim: plan.sim,
      cpus: plan.cpus,
      memoryMb: plan.memoryMb,
      liveness:
        plan.liveness === false
          ? null
          : {
              endpoints: plan.etcdEndpoints ?? etcdEndpoints,
              prefix: etcdPrefix,
              ttlSeconds: plan.ttlSeconds ?? 5,
            },
      metrics: options.metrics
        ? {
            url: influxUrl,
            database: options.metrics.database,
            intervalSeconds: options.metrics.intervalSeconds,
          }
        : null,
      registration: enrolmentToken ? { apiUrl, enrolmentToken } : { apiUrl, apiToken },
      log: (line) => logs.push(line),
      stopGraceMs: 3_000,
    };
    agentOptionsByName.set(plan.name, agentOptions);
    agents.set(plan.name, await startAgent(agentOptions));
  }
  const restartAgent = async (name: string) => {
    const agentOptions = agentOptionsByName.get(name);
    if (!agentOptions) throw new Error(`no agent ${name}`);
    const agent = await startAgent(agentOptions);
    agents.set(name, agent);
    return agent;
  };

  await waitFor('every host registered', async () => {
    const res = await api<{ hosts: { name: string }[] }>('GET', '/v1/hosts');
    return res.body.hosts.length === options.hosts.length;
  });

  return {
    db,
    apiUrl,
    apiToken,
    agentCredentialKey,
    peerToken,
    agentCredential,
    temporal,
    taskQueue,
    lockWorkflowId,
    etcdPrefix,
    agents,
    agentLogs,
    dir,
    api,
    startWorker,
    stopWorker,
    restartAgent,
    async stop() {
      for (const name of enrolledDirs.keys())
        rememberSecret(`the credential of ${name}`, agentCredential(name));
      const leak = await assertStackHoldsNoSecrets({
        databaseUrl: db.url,
        temporal,
        taskQueue,
        agentLogs,
      }).then(
        () => null,
        (err: Error) => err,
      );
      await hostWatch?.stop();
      await stopWorker();
      await Promise.all([...agents.values()].map((a) => a.stop()));
      server.close();
      liveness.close();
      await connection.close();
      await db.drop();
      await rm(dir, { recursive: true, force: true });
      if (leak) throw leak;
    },
  };
}
