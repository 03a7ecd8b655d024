import { randomUUID } from 'node:crypto';
import { appendFileSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import type { Client } from '@temporalio/client';
import { fixedAgentCredential } from '../../activities/agent-credentials.ts';
import type { Activities } from '../../activities/index.ts';
import type { SimHostProfile } from '../../agent/drivers/sim.ts';
import type { AgentOptions } from '../../agent/settings.ts';
import type { RunningAgent } from '../../agent/start-agent.ts';
import { connectDb, type DbHandle } from '../../db/client.ts';
import { DEFAULTS } from '../../domain/config.ts';
import type { HostDownTimings } from '../../domain/host-down-timing.ts';
import { DEFAULT_TIMINGS, type LiveMigrationTimings } from '../../domain/live-migration.ts';
import { guestImageDir } from '../../scripts/services/cache-dir.ts';
import { type InProcessStack, startInProcessStack } from '../../scripts/services/in-process-stack.ts';
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
 * The orchestrator as one process (scripts/services/in-process-stack.ts, as the integration tests run it): the
 * Hono API, one Temporal worker with every workflow and activity (and, with `hostWatch`, the workers' host
 * watch), and host agents with the real QEMU driver (or the sim driver), each agent holding an etcd lease and
 * registering with the API. Timings are the production defaults (DEFAULT_TIMINGS) unless `timings` overrides
 * them; every agent log line goes to <root>/logs/agent-<host>.log and to the listeners.
 */
export async function startOrchestrator(options: OrchestratorOptions): Promise<Orchestrator> {
  const { servers, root } = options;
  const apiToken = randomUUID();
  const agentToken = randomUUID();
  const etcd = { endpoints: servers.etcd.endpoints, prefix: 'vmmig-bench' };
  const timings = options.timings ?? DEFAULT_TIMINGS;
  const logDir = path.join(root, 'logs');
  mkdirSync(logDir, { recursive: true });
  const log = (file: string, message: string, at = Date.now()) =>
    appendFileSync(path.join(logDir, file), `${new Date(at).toISOString()} ${message}\n`);

  const db = connectDb(servers.databaseUrl);
  let stack: InProcessStack;
  try {
    stack = await startInProcessStack({
      db: db.db,
      databaseUrl: servers.databaseUrl,
      temporal: { address: servers.temporal.address, namespace: servers.temporal.namespace },
      taskQueue: `bench-${randomUUID()}`,
      etcd,
      apiToken,
      agentCredentials: fixedAgentCredential(agentToken),
      agentCredentialKey: randomUUID(),
      timings,
      ...(options.hostWatch
        ? { hostWatch: { timings: options.hostWatch, log: (line: string) => log('host-watch.log', line) } }
        : {}),
    });
  } catch (error) {
    await db.close();
    throw error;
  }
  const stop = async () => {
    try {
      await stack.stop();
    } finally {
      await db.close();
    }
  };
  try {
    const listeners = new Set<(line: AgentLogLine) => void>();
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
      liveness: { ...etcd, ttlSeconds: DEFAULTS.healthTtlSeconds },
      metrics: null,
      registration: { apiUrl: stack.apiUrl, apiToken },
      log: (message) => {
        const line = { at: Date.now(), host: name, message };
        log(`agent-${name}.log`, message, line.at);
        for (const listener of listeners) listener(line);
      },
    });
    for (const name of options.hosts) await stack.startAgent(agentOptions(name));
    await stack.waitForHosts(options.hosts.length, { online: true });

    return {
      apiUrl: stack.apiUrl,
      temporal: stack.temporal,
      db,
      agents: stack.agents,
      agentToken,
      etcdPrefix: etcd.prefix,
      agentDir,
      async restartAgent(name) {
        await stack.restartAgent(name);
      },
      activities: stack.activities as Activities,
      onAgentLog(listener) {
        listeners.add(listener);
        return () => listeners.delete(listener);
      },
      api: stack.api,
      stop,
    };
  } catch (error) {
    await stop();
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
