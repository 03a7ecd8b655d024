/**
 * The orchestrator as separate OS processes that the chaos suite can SIGKILL, SIGSTOP and restart:
 * Temporal dev server, PostgreSQL, etcd, the API, the worker and N host agents. Every starter comes
 * from scripts/services (the servers' from stack-servers.ts, as `npm start`, the test global setup and the
 * benchmarks start theirs); this file only keeps
 * the handles, the ports (fixed, so a restarted process comes back at the same address) and the data
 * directory (a temporary one).
 */
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { migrateDatabase } from '../../db/migrate.ts';
import { guestImageDir } from '../services/cache-dir.ts';
import type { EtcdServer } from '../services/etcd.ts';
import { startNodeApp } from '../services/node-app.ts';
import { freePorts, LOOPBACK } from '../services/ports.ts';
import { ensureDatabase } from '../services/postgres-database.ts';
import type { PostgresServer } from '../services/postgres.ts';
import { killGroup, type ManagedProcess } from '../services/process.ts';
import { listProcesses, sleep, type ProcEntry } from '../services/proc-table.ts';
import { killStackProcesses, STACK_MARKER, stackProcesses } from '../services/stragglers.ts';
import { startStackServers } from '../services/stack-servers.ts';
import type { TemporalServer } from '../services/temporal.ts';
import { httpStatus, waitUntil } from '../services/wait.ts';

export type Driver = 'sim' | 'qemu';

export interface ChaosStackOptions {
  driver: Driver;
  /** Number of host agents (host-1 … host-N). */
  hosts: number;
  /** Data directory; default a new temporary one (removed by stop() unless keepData). */
  root?: string;
  keepData?: boolean;
  /** etcd lease TTL of the agents, seconds. */
  healthTtlSeconds?: number;
  log?: (message: string) => void;
}

export interface AgentHandle {
  name: string;
  port: number;
  url: string;
  dir: string;
  process: ManagedProcess;
  /** Every process this agent ever was (a restart leaves QEMUs in the old process group). */
  generations: ManagedProcess[];
  stopped: boolean;
  /** Set by a deliberate kill: the next exit is the fault, not a crash. */
  expectExit: boolean;
  /** The one-time token its first start enrols with (later starts read <dir>/credential). */
  enrolmentToken?: string;
}

/** A process of the stack that exited without being asked to (restarted by the supervisor). */
export interface Crash {
  at: number;
  what: string;
  how: string;
}

export class ChaosStack {
  readonly apiToken = randomUUID();
  /** The API's and the worker's AGENT_CREDENTIAL_KEY; never given to an agent. */
  readonly agentCredentialKey = randomUUID();
  /** The agents' AGENT_PEER_TOKEN (their peer routes only). */
  readonly peerToken = randomUUID();
  readonly taskQueue = `chaos-${randomUUID().slice(0, 8)}`;
  readonly etcdPrefix = `chaos-${randomUUID().slice(0, 8)}`;
  readonly agents = new Map<string, AgentHandle>();
  temporal!: TemporalServer;
  postgres!: PostgresServer | null;
  etcd!: EtcdServer;
  databaseUrl = '';
  apiUrl = '';
  apiPort = 0;
  api: ManagedProcess | null = null;
  worker: ManagedProcess | null = null;
  private postgresPort = 0;
  private temporalPort = 0;
  private readonly retired: ManagedProcess[] = [];
  /** Unexpected exits, oldest first; the supervisor restarted each (as systemd would). */
  readonly crashes: Crash[] = [];
  private stopping = false;
  private readonly log: (message: string) => void;

  private constructor(
    readonly options: ChaosStackOptions,
    readonly root: string,
  ) {
    this.log = options.log ?? ((m) => console.log(`[chaos] ${m}`));
  }

  get logs(): string {
    return path.join(this.root, 'logs');
  }

  get sharedStorage(): string {
    return path.join(this.root, 'shared');
  }

  static async start(options: ChaosStackOptions): Promise<ChaosStack> {
    const root = options.root ?? fs.mkdtempSync(path.join(os.tmpdir(), 'vmmig-chaos-'));
    // postgres runs as the postgres user and must be able to enter the directory.
    fs.chmodSync(root, 0o755);
    // Every process started from here on carries the marker: stop() finds leftovers by it.
    process.env[STACK_MARKER] = root;
    const stack = new ChaosStack(options, root);
    try {
      await stack.startAll();
      return stack;
    } catch (error) {
      await stack.stop().catch(() => undefined);
      throw error;
    }
  }

  private async startAll(): Promise<void> {
    const started = Date.now();
    fs.mkdirSync(this.logs, { recursive: true });
    const [temporalPort, postgresPort, apiPort, ...agentPorts] = await freePorts(3 + this.options.hosts);
    this.temporalPort = temporalPort as number;
    this.postgresPort = postgresPort as number;
    this.apiPort = apiPort as number;
    this.apiUrl = `http://${LOOPBACK}:${this.apiPort}`;
    const { temporal, postgres, etcd } = await startStackServers({
      root: this.root,
      temporal: this.temporalPlan(),
      postgres: this.postgresPlan(),
      etcd: {},
    });
    this.temporal = temporal;
    this.postgres = postgres;
    this.etcd = etcd;
    this.databaseUrl = await ensureDatabase(postgres.url, 'vmmig');
    await migrateDatabase(this.databaseUrl);
    this.startWorker();
    await this.startApi();
    for (let i = 0; i < this.options.hosts; i++) {
      const name = `host-${i + 1}`;
      const port = agentPorts[i] as number;
      const dir = path.join(this.root, 'agents', name);
      fs.mkdirSync(dir, { recursive: true });
      const handle: AgentHandle = {
        name,
        port,
        url: `http://${LOOPBACK}:${port}`,
        dir,
        process: null as unknown as ManagedProcess,
        generations: [],
        stopped: false,
        expectExit: false,
      };
      this.agents.set(name, handle);
      handle.enrolmentToken = await this.enrolmentToken(name);
      this.spawnAgent(handle);
    }
    await this.waitHostsOnline(this.agentNames());
    this.log(`stack up in ${Date.now() - started} ms (${this.options.driver}, data in ${this.root})`);
  }

  agentNames(): string[] {
    return [...this.agents.keys()];
  }

  agent(name: string): AgentHandle {
    const agent = this.agents.get(name);
    if (!agent) throw new Error(`no agent ${name}`);
    return agent;
  }

  // --- Temporal ------------------------------------------------------------------------------

  /** Its SQLite file and port stay the same across restarts. */
  private temporalPlan() {
    return {
      dbFile: path.join(this.root, 'temporal', 'temporal.db'),
      port: this.temporalPort,
      headless: true,
    };
  }

  /** Stops the Temporal server (its SQLite file stays) and starts it again on the same port. */
  async restartTemporal(): Promise<void> {
    await this.temporal.stop();
    this.retired.push(this.temporal.process);
    this.temporal = (await startStackServers({ root: this.root, temporal: this.temporalPlan() })).temporal;
  }

  // --- PostgreSQL ----------------------------------------------------------------------------

  private postgresPlan() {
    return { port: this.postgresPort, durable: true };
  }

  async stopPostgres(): Promise<void> {
    if (!this.postgres) return;
    const server = this.postgres;
    this.postgres = null;
    await server.stop();
    this.retired.push(server.process);
  }

  async startPostgresAgain(): Promise<void> {
    if (this.postgres) return;
    this.postgres = (await startStackServers({ root: this.root, postgres: this.postgresPlan() })).postgres;
  }

  // --- worker and API ------------------------------------------------------------------------

  private serviceEnv(): NodeJS.ProcessEnv {
    return {
      ...process.env,
      API_HOST: LOOPBACK,
      API_PORT: String(this.apiPort),
      API_TOKEN: this.apiToken,
      AGENT_CREDENTIAL_KEY: this.agentCredentialKey,
      DATABASE_URL: this.databaseUrl,
      TEMPORAL_ADDRESS: `${LOOPBACK}:${this.temporalPort}`,
      TEMPORAL_NAMESPACE: this.temporal.namespace,
      TEMPORAL_TASK_QUEUE: this.taskQueue,
      ETCD_ENDPOINTS: this.etcd.endpoints.join(','),
      ETCD_PREFIX: this.etcdPrefix,
    };
  }

  startWorker(): void {
    const child = startNodeApp({
      name: 'worker',
      entry: 'workers/main.ts',
      env: this.serviceEnv(),
      logFile: path.join(this.logs, 'worker.log'),
      graceMs: 10_000,
    });
    this.worker = child;
    this.restartWhenItDies(
      child,
      'worker',
      () => this.worker === child,
      () => {
        this.retired.push(child);
        this.startWorker();
      },
    );
  }

  /** SIGKILL of the worker process (its Temporal activities time out and are retried elsewhere). */
  killWorker(): void {
    const worker = this.worker;
    if (!worker) return;
    this.retired.push(worker);
    signal(worker.pid, 'SIGKILL');
    this.worker = null;
  }

  async startApi(): Promise<void> {
    const child = startNodeApp({
      name: 'api',
      entry: 'api/main.ts',
      env: this.serviceEnv(),
      logFile: path.join(this.logs, 'api.log'),
      graceMs: 10_000,
    });
    this.api = child;
    this.restartWhenItDies(
      child,
      'api',
      () => this.api === child,
      () => {
        this.retired.push(child);
        this.startApi().catch(() => undefined);
      },
    );
    await waitUntil(async () => (await httpStatus(`${this.apiUrl}/healthz`)) === 200, {
      what: `the API to answer GET /healthz on ${this.apiUrl}`,
      timeoutMs: 120_000,
      process: child,
    });
  }

  killApi(): void {
    const api = this.api;
    if (!api) return;
    this.retired.push(api);
    signal(api.pid, 'SIGKILL');
    this.api = null;
  }

  // --- agents --------------------------------------------------------------------------------

  /** A one-time enrolment token for host `name`, made through the API with the bootstrap admin token. */
  private async enrolmentToken(name: string): Promise<string> {
    const response = await fetch(`${this.apiUrl}/v1/enrolment-tokens`, {
      method: 'POST',
      headers: { authorization: `Bearer ${this.apiToken}`, 'content-type': 'application/json' },
      body: JSON.stringify({ name: `chaos-${name}`, host: name }),
    });
    const body = (await response.json()) as { token?: string };
    if (response.status !== 201 || !body.token)
      throw new Error(`enrolment token for ${name}: ${response.status}`);
    return body.token;
  }

  private spawnAgent(handle: AgentHandle): void {
    const { API_TOKEN: _api, AGENT_CREDENTIAL_KEY: _key, ...agentEnv } = process.env;
    void _api;
    void _key;
    const enrolled = fs.existsSync(path.join(handle.dir, 'credential'));
    const child = startNodeApp({
      name: `agent ${handle.name}`,
      entry: 'agent/main.ts',
      env: {
        ...agentEnv,
        ...(!enrolled && handle.enrolmentToken ? { AGENT_ENROLMENT_TOKEN: handle.enrolmentToken } : {}),
        AGENT_NAME: handle.name,
        AGENT_HOST: LOOPBACK,
        AGENT_PORT: String(handle.port),
        AGENT_DIR: handle.dir,
        AGENT_PEER_TOKEN: this.peerToken,
        AGENT_DRIVER: this.options.driver,
        SHARED_STORAGE_DIR: this.sharedStorage,
        GUEST_IMAGE_DIR: guestImageDir(),
        ETCD_ENDPOINTS: this.etcd.endpoints.join(','),
        ETCD_PREFIX: this.etcdPrefix,
        HEALTH_TTL_S: String(this.options.healthTtlSeconds ?? 5),
        // No InfluxDB in this stack: metrics go nowhere, rarely.
        INFLUX_URL: 'http://127.0.0.1:9',
        METRICS_INTERVAL_S: '3600',
        API_URL: this.apiUrl,
      },
      logFile: path.join(this.logs, `agent-${handle.name}.log`),
      graceMs: 30_000,
    });
    handle.process = child;
    handle.generations.push(child);
    handle.stopped = false;
    handle.expectExit = false;
    this.restartWhenItDies(
      child,
      `agent ${handle.name}`,
      () => !handle.expectExit && handle.process === child,
      () => this.spawnAgent(handle),
    );
  }

  /** The supervisor (as systemd would): a process that exits unasked is recorded as a crash and restarted. */
  private restartWhenItDies(
    child: ManagedProcess,
    what: string,
    unasked: () => boolean,
    restart: () => void,
  ): void {
    void child.exited.then((exit) => {
      if (this.stopping || !unasked()) return;
      this.crashes.push({ at: Date.now(), what, how: exit.signal ?? `exit code ${exit.code}` });
      restart();
    });
  }

  /** SIGKILL of the agent process alone: its QEMUs (qemu driver) live on; a sim agent's guests die with it. */
  killAgent(name: string): void {
    const handle = this.agent(name);
    handle.expectExit = true;
    signal(handle.process.pid, 'SIGKILL');
    if (handle.stopped) signal(handle.process.pid, 'SIGCONT');
  }

  /** The host dies: the agent and every QEMU of that host (SIGKILL). */
  async killHost(name: string): Promise<void> {
    const handle = this.agent(name);
    this.killAgent(name);
    for (const p of this.qemuProcessesOf(name)) signal(p.pid, 'SIGKILL');
    await killGroup(handle.process.pid);
    await handle.process.exited;
  }

  /** A new agent process for `name` (same port, same data dir); resolves once it answers. */
  async restartAgent(name: string): Promise<void> {
    const handle = this.agent(name);
    await handle.process.exited;
    this.spawnAgent(handle);
    await waitUntil(async () => (await httpStatus(`${handle.url}/v1/facts`, this.agentAuth(name))) === 200, {
      what: `agent ${name} to answer again`,
      timeoutMs: 60_000,
      process: handle.process,
    });
  }

  pauseAgent(name: string): void {
    const handle = this.agent(name);
    handle.stopped = true;
    signal(handle.process.pid, 'SIGSTOP');
  }

  resumeAgent(name: string): void {
    const handle = this.agent(name);
    handle.stopped = false;
    signal(handle.process.pid, 'SIGCONT');
  }

  /** The host's own credential, as its agent stored it at enrolment. */
  agentAuth(name: string): Record<string, string> {
    let credential = '';
    try {
      credential = fs.readFileSync(path.join(this.agent(name).dir, 'credential'), 'utf8').trim();
    } catch {
      // Not enrolled yet: the call is refused like any without a credential.
    }
    return { authorization: `Bearer ${credential}` };
  }

  /** QEMU processes whose command line names this host's agent directory. */
  qemuProcessesOf(name: string): ProcEntry[] {
    const dir = `${this.agent(name).dir}/`;
    return listProcesses().filter((p) => /qemu-system/.test(p.cmdline) && p.cmdline.includes(dir));
  }

  async waitHostsOnline(names: string[], timeoutMs = 90_000): Promise<void> {
    await waitUntil(
      async () => {
        const res = await fetch(`${this.apiUrl}/v1/hosts`, {
          headers: { authorization: `Bearer ${this.apiToken}` },
          signal: AbortSignal.timeout(5_000),
        });
        if (res.status !== 200) return false;
        const body = (await res.json()) as { items: { name: string; status: string }[] };
        return names.every((n) => body.items.some((h) => h.name === n && h.status === 'online'));
      },
      { what: `hosts ${names.join(', ')} online`, timeoutMs, intervalMs: 300 },
    );
  }

  /**
   * Stops every process (agents first, so they stop their guests), then kills whatever is left
   * of this stack and reports it; resolves with the processes that were still alive at the end.
   */
  async stop(): Promise<ProcEntry[]> {
    this.stopping = true;
    for (const handle of this.agents.values()) if (handle.stopped) this.resumeAgent(handle.name);
    const agents = [...this.agents.values()].flatMap((a) => a.generations);
    await Promise.allSettled(agents.map((p) => p.stop()));
    await Promise.allSettled([this.api?.stop(), this.worker?.stop()]);
    await Promise.allSettled([this.temporal?.stop(), this.postgres?.stop(), this.etcd?.stop()]);
    await Promise.allSettled(this.retired.map((p) => p.stop()));
    const leftovers = await killStackProcesses(this.root, 2_000);
    for (const p of leftovers) this.log(`killed a leftover process ${p.pid}: ${p.cmdline.slice(0, 120)}`);
    await sleep(200);
    const still = stackProcesses(this.root);
    if (!this.options.keepData && still.length === 0) {
      fs.rmSync(this.root, { recursive: true, force: true });
    }
    return still;
  }
}

function signal(pid: number, name: NodeJS.Signals): void {
  try {
    process.kill(pid, name);
  } catch {
    // Gone already.
  }
}
