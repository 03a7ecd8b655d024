/**
 * The orchestrator inside this process, wired as api/main.ts and workers/main.ts wire it in theirs: the Hono
 * API on a free loopback port, one Temporal worker with every workflow and activity (stopped and started
 * again at will), optionally the workers' host watch, and host agents registering with that API. The
 * integration tests (test/helpers/mini-stack.ts) and the benchmarks (bench/live-migrate/stack.ts) run it
 * against the servers of stack-servers.ts; what differs between them (database, credentials, timings, the
 * agents' options, what is checked in every answer) comes in through the options.
 */
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { serve } from '@hono/node-server';
import { Client, Connection } from '@temporalio/client';
import { DefaultLogger, NativeConnection, Runtime } from '@temporalio/worker';
import type { AgentCredentials } from '../../activities/agent-credentials.ts';
import type { AlertMetricsReader } from '../../activities/alert-metrics.ts';
import { HostLiveness } from '../../activities/host-liveness.ts';
import { createActivities, type Activities } from '../../activities/index.ts';
import type { AgentOptions } from '../../agent/settings.ts';
import { startAgent, type RunningAgent } from '../../agent/start-agent.ts';
import { createApp } from '../../api/app.ts';
import type { Db } from '../../db/client.ts';
import { MigrationChanges } from '../../db/migration-changes.ts';
import { findHost } from '../../db/inventory.ts';
import type { AlertCycleTimings } from '../../domain/alert-cycle.ts';
import type { EtcdSettings } from '../../domain/config.ts';
import type { HostDownTimings } from '../../domain/host-down-timing.ts';
import type { LiveMigrationTimings } from '../../domain/live-migration.ts';
import { HostWatch } from '../../workers/host-watch.ts';
import { createWorker, type OrchestratorWorker } from '../../workers/worker.ts';
import { waitUntil } from './wait.ts';

/** How long stopping the worker waits for its activities to end; one that ignores the shutdown is left behind. */
const WORKER_STOP_WAIT_MS = 30_000;
const HOSTS_UP_TIMEOUT_MS = 60_000;

export interface InProcessStackOptions {
  db: Db;
  /** The database's URL: the API listens there for migration changes (without it, it polls the records). */
  databaseUrl?: string;
  temporal: { address: string; namespace: string };
  taskQueue: string;
  /** The hosts' health keys: read by the API and activities, watched by the host watch. */
  etcd: EtcdSettings;
  apiToken: string;
  agentCredentials: AgentCredentials;
  agentCredentialKey: string;
  timings: LiveMigrationTimings;
  alertCycleTimings?: AlertCycleTimings;
  metrics?: AlertMetricsReader;
  /** Default `migration-lock`; stacks sharing one Temporal namespace each need their own. */
  migrationLockWorkflowId?: string;
  /** false: no worker until startWorker(). Default true. */
  worker?: boolean;
  /** The migrations' worker's workflow task slots (maxConcurrentWorkflowTaskExecutions); default the SDK's 40. */
  workerTaskSlots?: number;
  /** Also run what a worker process runs beside its worker: the host watch. */
  hostWatch?: { timings: HostDownTimings; log: (line: string) => void };
  /** Sees every API answer before it is parsed (the tests scan it for secrets). */
  onApiAnswer?: (request: string, status: number, text: string) => void;
}

export interface ApiResponse<T = Record<string, unknown>> {
  status: number;
  body: T;
}

/**
 * JSON requests to an API with a bearer token (the bootstrap admin's unless a call names another); `onAnswer`
 * sees every answer's text (the tests check it for secrets).
 */
export function jsonApi(
  apiUrl: string,
  defaultToken: string,
  onAnswer?: (request: string, status: number, text: string) => void,
): InProcessStack['api'] {
  return async <T>(method: string, urlPath: string, body?: unknown, token = defaultToken) => {
    const res = await fetch(`${apiUrl}${urlPath}`, {
      method,
      headers: {
        authorization: `Bearer ${token}`,
        ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
      },
      body: body !== undefined ? JSON.stringify(body) : undefined,
    });
    const text = await res.text();
    onAnswer?.(`${method} ${urlPath}`, res.status, text);
    return { status: res.status, body: (text ? JSON.parse(text) : null) as T };
  };
}

export interface InProcessStack {
  apiUrl: string;
  temporal: Client;
  /** The running agent of each host; startAgent and restartAgent replace a host's entry. */
  agents: Map<string, RunningAgent>;
  /** The running worker's activities (as the worker runs them), or undefined while none runs. */
  readonly activities: Activities | undefined;
  /** The API as the bootstrap admin, or with `token`. */
  api<T = Record<string, unknown>>(
    method: string,
    path: string,
    body?: unknown,
    token?: string,
  ): Promise<ApiResponse<T>>;
  startWorker(wrap?: (activities: Activities) => Activities): Promise<void>;
  stopWorker(): Promise<void>;
  startAgent(options: AgentOptions): Promise<RunningAgent>;
  /** Starts a host's agent again with its last options (so on its own dir, with its host id), after its `stop`. */
  restartAgent(name: string): Promise<RunningAgent>;
  /** Waits until `count` hosts are registered (and, with `online`, hold their etcd lease). */
  waitForHosts(count: number, options?: { online?: boolean }): Promise<void>;
  /** Stops the host watch, the worker, the agents, the API and the clients; every step is tried. */
  stop(): Promise<void>;
}

/** Worker state chatter drowns test and benchmark output; warnings and errors still show. Once per process. */
function quietTemporalRuntime(): void {
  try {
    Runtime.install({ logger: new DefaultLogger('WARN') });
  } catch {
    // Installed already (another stack in this process).
  }
}

export async function startInProcessStack(options: InProcessStackOptions): Promise<InProcessStack> {
  quietTemporalRuntime();
  const { db, taskQueue } = options;
  const { address, namespace } = options.temporal;
  const stops: { what: string; stop: () => Promise<void> }[] = [];
  const stop = async (): Promise<void> => {
    const errors: unknown[] = [];
    for (const { what, stop: stopOne } of stops.splice(0).reverse()) {
      await stopOne().catch((error: unknown) => {
        console.error(`in-process stack: stopping ${what}: ${String(error)}`);
        errors.push(error);
      });
    }
    if (errors.length === 1) throw errors[0];
    if (errors.length > 1) throw new AggregateError(errors, 'in-process stack: several parts failed to stop');
  };
  try {
    const connection = await Connection.connect({ address });
    stops.push({ what: 'Temporal client', stop: () => connection.close() });
    const temporal = new Client({ connection, namespace });
    const liveness = new HostLiveness(options.etcd);
    stops.push({ what: 'etcd client', stop: async () => liveness.close() });
    const migrationChanges = options.databaseUrl ? MigrationChanges.fromUrl(options.databaseUrl) : undefined;
    if (migrationChanges) {
      await migrationChanges.start();
      stops.push({ what: 'migration changes listener', stop: () => migrationChanges.close() });
    }

    const app = createApp({
      db,
      temporal,
      taskQueue,
      liveness,
      agentCredentials: options.agentCredentials,
      agentCredentialKey: options.agentCredentialKey,
      apiToken: options.apiToken,
      liveMigrationTimings: options.timings,
      ...(options.metrics ? { metrics: options.metrics } : {}),
      ...(options.alertCycleTimings ? { alertCycleTimings: options.alertCycleTimings } : {}),
      ...(migrationChanges ? { migrationChanges } : {}),
    });
    const server = serve({ fetch: app.fetch, hostname: '127.0.0.1', port: 0 });
    await new Promise<void>((resolve) => server.once('listening', resolve));
    stops.push({
      what: 'API server',
      stop: async () => {
        const closed = new Promise<void>((resolve) => server.close(() => resolve()));
        // Everything that called it has stopped; a request still held open must not hold up the stop.
        if ('closeAllConnections' in server) server.closeAllConnections();
        await closed;
      },
    });
    const apiUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

    const agents = new Map<string, RunningAgent>();
    const agentOptions = new Map<string, AgentOptions>();
    stops.push({
      what: 'agents',
      stop: async () => {
        await Promise.all([...agents.values()].map((agent) => agent.stop()));
      },
    });
    const startAgentOf = async (agentOptionsOf: AgentOptions): Promise<RunningAgent> => {
      agentOptions.set(agentOptionsOf.name, agentOptionsOf);
      const agent = await startAgent(agentOptionsOf);
      agents.set(agentOptionsOf.name, agent);
      return agent;
    };

    let worker: { worker: OrchestratorWorker; running: Promise<void>; activities: Activities } | undefined;
    const startWorker = async (wrap?: (activities: Activities) => Activities): Promise<void> => {
      const nativeConnection = await NativeConnection.connect({ address });
      try {
        const created = createActivities({
          db,
          agentCredentials: options.agentCredentials,
          liveness,
          temporal,
          ...(options.migrationLockWorkflowId
            ? { migrationLockWorkflowId: options.migrationLockWorkflowId }
            : {}),
          ...(options.metrics ? { metrics: options.metrics } : {}),
        });
        const activities = wrap ? wrap(created) : created;
        const w = await createWorker({
          connection: nativeConnection,
          namespace,
          taskQueue,
          activities,
          db,
          ...(options.workerTaskSlots
            ? { maxConcurrentWorkflowTaskExecutions: options.workerTaskSlots }
            : {}),
        });
        const running = w.run().finally(() => nativeConnection.close());
        worker = { worker: w, running, activities };
      } catch (error) {
        await nativeConnection.close();
        throw error;
      }
    };
    const stopWorker = async (): Promise<void> => {
      if (!worker) return;
      const current = worker;
      worker = undefined;
      // The SDK stops the workers by itself on SIGINT/SIGTERM; shutdown() leaves those alone.
      current.worker.shutdown();
      const stopped = await Promise.race([
        current.running.then(() => true),
        sleep(WORKER_STOP_WAIT_MS).then(() => false),
      ]);
      if (!stopped)
        console.warn(`in-process stack: the worker did not stop within ${WORKER_STOP_WAIT_MS} ms`);
    };
    stops.push({ what: 'worker', stop: stopWorker });
    if (options.worker !== false) await startWorker();

    if (options.hostWatch) {
      const hostWatch = new HostWatch({
        etcd: options.etcd,
        temporal,
        taskQueue,
        log: options.hostWatch.log,
        timings: options.hostWatch.timings,
        migrationTimings: options.timings,
        hostName: async (hostId) => (await findHost(db, hostId))?.name,
      });
      await hostWatch.start();
      stops.push({ what: 'host watch', stop: () => hostWatch.stop() });
    }

    const api = jsonApi(apiUrl, options.apiToken, options.onApiAnswer);

    const waitForHosts = async (count: number, { online = false } = {}): Promise<void> => {
      let lastAnswer = '';
      await waitUntil(
        async () => {
          const res = await api<{ items: { name: string; status: string }[] }>('GET', '/v1/hosts');
          lastAnswer = JSON.stringify(res.body);
          return res.body.items.filter((host) => !online || host.status === 'online').length === count;
        },
        { what: `${count} host(s) ${online ? 'online' : 'registered'}`, timeoutMs: HOSTS_UP_TIMEOUT_MS },
      ).catch((error: Error) => {
        throw new Error(`${error.message}; the last GET /v1/hosts: ${lastAnswer}`);
      });
    };

    return {
      apiUrl,
      temporal,
      agents,
      get activities() {
        return worker?.activities;
      },
      api,
      startWorker,
      stopWorker,
      startAgent: startAgentOf,
      async restartAgent(name) {
        const last = agentOptions.get(name);
        if (!last) throw new Error(`no agent ${name}`);
        return startAgentOf(last);
      },
      waitForHosts,
      stop,
    };
  } catch (error) {
    await stop().catch(() => undefined);
    throw error;
  }
}
