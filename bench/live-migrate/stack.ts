import { fixedAgentCredential } from '../../activities/agent-credentials.ts';
import { randomUUID } from 'node:crypto';
import { appendFileSync, mkdirSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { serve } from '@hono/node-server';
import { Client, Connection } from '@temporalio/client';
import { DefaultLogger, NativeConnection, Runtime, type Worker } from '@temporalio/worker';
import { HostLiveness } from '../../activities/host-liveness.ts';
import { createActivities, type Activities } from '../../activities/index.ts';
import type { SimHostProfile } from '../../agent/drivers/sim.ts';
import type { AgentOptions } from '../../agent/settings.ts';
import { startAgent, type RunningAgent } from '../../agent/start-agent.ts';
import { createApp } from '../../api/app.ts';
import { connectDb, type DbHandle } from '../../db/client.ts';
import { DEFAULTS } from '../../domain/config.ts';
import type { HostDownTimings } from '../../domain/host-down-timing.ts';
import { DEFAULT_TIMINGS, type LiveMigrationTimings } from '../../domain/live-migration.ts';
import { guestImageDir } from '../../scripts/services/cache-dir.ts';
import { sleep } from '../../scripts/services/proc-table.ts';
import { HostWatch } from '../../workers/host-watch.ts';
import { createWorker } from '../../workers/worker.ts';
import { startBenchServers, type BenchServers } from '../lib/servers.ts';
import { ms } from '../lib/stats.ts';
import type { BenchWorkdir } from '../lib/workdir.ts';

/** One agent log line with the time this process received it (agents run in-process: no delay). */
export interface AgentLogLine {
  at: number;
  host: string;
  message: string;
}

export interface Orchestrator {
  apiUrl: string;
  temporal: Client;
  db: DbHandle;
  /** The running agent of each host; restartAgent replaces a host's entry. */
  agents: Map<string, RunningAgent>;
  agentToken: string;
  /** The etcd prefix of the hosts' health keys and of the host watch. */
  etcdPrefix: string;
  /** A host's agent dir (its guests' files live under guests/<id>/). */
  agentDir(host: string): string;
  /** Starts a host's agent again on its own dir (so with its host id), after its `stop`. */
  restartAgent(host: string): Promise<void>;
  /** The worker's activities (the benchmark calls resolveMigrationSettings to learn the plan). */
  activities: Activities;
  /** Called for every agent log line as it is logged. */
  onAgentLog(listener: (line: AgentLogLine) => void): () => void;
  api<T>(method: string, urlPath: string, body?: unknown): Promise<{ status: number; body: T }>;
  stop(): Promise<void>;
}

export interface OrchestratorOptions {
  servers: BenchServers;
  root: string;
  hosts: string[];
  /** Live migration timings of the API and the host watch; default DEFAULT_TIMINGS (production). */
  timings?: LiveMigrationTimings;
  /** The agents' driver; default 'qemu'. */
  driver?: 'qemu' | 'sim';
  /** With the sim driver: the hosts' profile (link speed, memory, cpus); unset fields take its defaults. */
  sim?: Partial<SimHostProfile>;
  /**
   * Also run what a worker process runs beside its worker: the host watch, starting hostDown and hostReturn
   * runs from the health keys, with these timings (DEFAULT_HOST_DOWN_TIMINGS for production's).
   */
  hostWatch?: HostDownTimings;
}

/**
 * The orchestrator as one process, wired the way test/helpers/mini-stack.ts does it: the Hono API,
 * one Temporal worker with every workflow and activity (and, with `hostWatch`, the workers' host watch),
 * and host agents with the real QEMU driver (or the sim driver), each agent holding an etcd lease and
 * registering with the API. Timings are the production defaults (DEFAULT_TIMINGS) unless `timings`
 * overrides them.
 */
export async function startOrchestrator(options: OrchestratorOptions): Promise<Orchestrator> {
  const { servers, root } = options;
  try {
    // Worker state chatter would drown the figures; warnings and errors still show.
    Runtime.install({ logger: new DefaultLogger('WARN') });
  } catch {
    // Installed already (a second benchmark in this process).
  }
  const apiToken = randomUUID();
  const agentToken = randomUUID();
  const taskQueue = `bench-${randomUUID()}`;
  const etcdPrefix = 'vmmig-bench';
  const namespace = servers.temporal.namespace;
  const address = servers.temporal.address;
  const timings = options.timings ?? DEFAULT_TIMINGS;
  const logDir = path.join(root, 'logs');
  mkdirSync(logDir, { recursive: true });
  const log = (file: string, message: string, at = Date.now()) =>
    appendFileSync(path.join(logDir, file), `${new Date(at).toISOString()} ${message}\n`);

  const stops: { what: string; stop: () => Promise<void> }[] = [];
  const stopAll = async () => {
    for (const { what, stop } of stops.reverse()) {
      await stop().catch((error: unknown) => console.error(`stopping ${what}: ${String(error)}`));
    }
  };
  try {
    const db = connectDb(options.servers.databaseUrl);
    stops.push({ what: 'database pool', stop: () => db.close() });
    const connection = await Connection.connect({ address });
    stops.push({ what: 'Temporal client', stop: () => connection.close() });
    const temporal = new Client({ connection, namespace });
    const liveness = new HostLiveness({ endpoints: servers.etcd.endpoints, prefix: etcdPrefix });
    stops.push({ what: 'etcd client', stop: async () => liveness.close() });

    const app = createApp({
      db: db.db,
      temporal,
      taskQueue,
      liveness,
      agentCredentials: fixedAgentCredential(agentToken),
      agentCredentialKey: randomUUID(),
      apiToken,
      liveMigrationTimings: timings,
    });
    const server = serve({ fetch: app.fetch, hostname: '127.0.0.1', port: 0 });
    await new Promise<void>((resolve) => server.once('listening', resolve));
    stops.push({
      what: 'API server',
      stop: () => new Promise<void>((resolve) => server.close(() => resolve())),
    });
    const apiUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

    const nativeConnection = await NativeConnection.connect({ address });
    stops.push({ what: 'worker connection', stop: () => nativeConnection.close() });
    const activities = createActivities({
      db: db.db,
      agentCredentials: fixedAgentCredential(agentToken),
      liveness,
      temporal,
    });
    const worker: Worker = await createWorker({
      connection: nativeConnection,
      namespace,
      taskQueue,
      activities,
      db: db.db,
    });
    const running = worker.run();
    stops.push({
      what: 'worker',
      stop: async () => {
        // The SDK stops the worker by itself on SIGINT/SIGTERM; shutdown() then throws.
        if (worker.getState() === 'RUNNING') worker.shutdown();
        await running;
      },
    });

    if (options.hostWatch) {
      const hostWatch = new HostWatch({
        etcd: { endpoints: servers.etcd.endpoints, prefix: etcdPrefix },
        temporal,
        taskQueue,
        log: (line) => log('host-watch.log', line),
        timings: options.hostWatch,
        migrationTimings: timings,
      });
      await hostWatch.start();
      stops.push({ what: 'host watch', stop: () => hostWatch.stop() });
    }

    const listeners = new Set<(line: AgentLogLine) => void>();
    const agents = new Map<string, RunningAgent>();
    const agentDir = (name: string) => path.join(root, 'agents', name);
    const agentOptions = (name: string): AgentOptions => ({
      name,
      host: '127.0.0.1',
      port: 0,
      dir: agentDir(name),
      token: agentToken,
      driver: options.driver ?? 'qemu',
      ...(options.sim ? { sim: options.sim } : {}),
      sharedStorageDir: path.join(root, 'shared'),
      guestImageDir: guestImageDir(),
      migrationAddress: null,
      networks: [...DEFAULTS.agentNetworks],
      liveness: {
        endpoints: servers.etcd.endpoints,
        prefix: etcdPrefix,
        ttlSeconds: DEFAULTS.healthTtlSeconds,
      },
      metrics: null,
      registration: { apiUrl, apiToken },
      log: (message) => {
        const line = { at: Date.now(), host: name, message };
        log(`agent-${name}.log`, message, line.at);
        for (const listener of listeners) listener(line);
      },
    });
    stops.push({
      what: 'agents',
      stop: async () => {
        await Promise.all([...agents.values()].map((agent) => agent.stop()));
      },
    });
    for (const name of options.hosts) agents.set(name, await startAgent(agentOptions(name)));

    const api = async <T>(method: string, urlPath: string, body?: unknown) => {
      const res = await fetch(`${apiUrl}${urlPath}`, {
        method,
        headers: {
          authorization: `Bearer ${apiToken}`,
          ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
        },
        body: body !== undefined ? JSON.stringify(body) : undefined,
      });
      const text = await res.text();
      return { status: res.status, body: (text ? JSON.parse(text) : null) as T };
    };

    // Every host registered and holding its etcd lease.
    const deadline = Date.now() + 60_000;
    for (;;) {
      const res = await api<{ hosts: { name: string; status: string }[] }>('GET', '/v1/hosts');
      const online = res.body.hosts.filter((h) => h.status === 'online').length;
      if (online === options.hosts.length) break;
      if (Date.now() > deadline) throw new Error(`hosts not online after 60 s: ${JSON.stringify(res.body)}`);
      await sleep(200);
    }

    return {
      apiUrl,
      temporal,
      db,
      agents,
      agentToken,
      etcdPrefix,
      agentDir,
      async restartAgent(name) {
        agents.set(name, await startAgent(agentOptions(name)));
      },
      activities,
      onAgentLog(listener) {
        listeners.add(listener);
        return () => listeners.delete(listener);
      },
      api,
      stop: stopAll,
    };
  } catch (error) {
    await stopAll();
    throw error;
  }
}

/**
 * A benchmark run's servers (bench/lib/servers.ts, under its directory) and orchestrator, both stopped at its
 * cleanup; prints what came up, where and how fast.
 */
export async function startRunStack(
  work: Pick<BenchWorkdir, 'root' | 'track'>,
  print: (line: string) => void,
  options: Omit<OrchestratorOptions, 'servers' | 'root'>,
): Promise<{ servers: BenchServers; stack: Orchestrator }> {
  let started = Date.now();
  const servers = work.track(await startBenchServers(work.root), 'servers');
  print(
    `servers: Temporal ${servers.temporal.address}, PostgreSQL :${servers.postgres.port}, ` +
      `etcd ${servers.etcd.endpoints[0]} up in ${ms(Date.now() - started)}`,
  );
  started = Date.now();
  const stack = work.track(await startOrchestrator({ ...options, servers, root: work.root }), 'orchestrator');
  const { hosts } = options;
  print(
    `orchestrator: API ${stack.apiUrl}, worker${options.hostWatch ? ', host watch' : ''}, ` +
      `${hosts.length <= 3 ? `agents ${hosts.join(' and ')}` : `${hosts.length} agents`} ` +
      `(${options.driver ?? 'qemu'} driver) up in ${ms(Date.now() - started)}`,
  );
  return { servers, stack };
}
