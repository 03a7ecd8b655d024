import { randomUUID } from 'node:crypto';
import { appendFileSync, chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { serve } from '@hono/node-server';
import { Client, Connection } from '@temporalio/client';
import { DefaultLogger, NativeConnection, Runtime, type Worker } from '@temporalio/worker';
import { Etcd3 } from 'etcd3';
import { HostLiveness } from '../activities/host-liveness.ts';
import { createActivities } from '../activities/index.ts';
import { processAlive, processCommandLine } from '../agent/proc-stat.ts';
import type { AgentOptions } from '../agent/settings.ts';
import { startAgent, type RunningAgent } from '../agent/start-agent.ts';
import { createApp } from '../api/app.ts';
import { connectDb } from '../db/client.ts';
import { DEFAULTS, hostHealthPrefix } from '../domain/config.ts';
import { DEFAULT_HOST_DOWN_TIMINGS, fencingWaitMs } from '../domain/host-down-timing.ts';
import { DEFAULT_TIMINGS } from '../domain/live-migration.ts';
import { coldMigrationWorkflowId, hostDownWorkflowId } from '../domain/workflow-ids.ts';
import { guestImageDir } from '../scripts/services/cache-dir.ts';
import { listProcesses, sleep } from '../scripts/services/proc-table.ts';
import { repoRoot } from '../scripts/services/repo-root.ts';
import { HostWatch } from '../workers/host-watch.ts';
import { createWorker } from '../workers/worker.ts';
import { cpuBetween, cpuSnapshot } from './lib/cpu.ts';
import { addCleanup, runCleanups } from './lib/lifecycle.ts';
import { killProcessesUnder, processesUnder, reapProcessesUnder } from './lib/processes.ts';
import { startBenchServers, type BenchServers } from './lib/servers.ts';
import { ms, summarize, table } from './lib/stats.ts';
import { readRunHistory } from './live-migrate/history.ts';

export const name = 'host-down';

export const summary =
  'SIGKILL a QEMU host (agent and QEMUs, 10 s lease): time until its shared-storage guest runs on another host';

export const usage = `npm run bench -- host-down [--rounds N] [--keep]

  --rounds N  hosts killed, each with a fresh guest (1 vCPU, 256 MiB, shared 64 MiB disk, disk test on);
              default 3. The two hosts take turns dying; the dead one's agent is restarted after each round.
  --keep      keep the temporary directory (agent logs, guest consoles) after the run`;

/** Targets and the waits of the systems we compare with (their defaults, not measured here). */
const TARGET_MEDIAN_TOTAL_MS = 25_000;
const CLOUDPODS_MS = 70_000; // lease 10 s + its 60 s wait + a ping
const MASAKARI_WAIT_MS = 180_000; // wait_period_after_service_update before it evacuates

const HOSTS = ['host-1', 'host-2'];
const POLL_MS = 100;

interface Options {
  rounds: number;
  keep: boolean;
}

function parseOptions(args: string[]): Options {
  const options: Options = { rounds: 3, keep: false };
  for (let i = 0; i < args.length; i++) {
    const [flag, inline] = (args[i] as string).split('=', 2) as [string, string | undefined];
    if (flag === '--rounds') {
      const raw = inline ?? args[++i];
      const n = Number(raw);
      if (raw === undefined || !Number.isInteger(n) || n < 1)
        throw new Error('--rounds needs a whole number >= 1');
      options.rounds = n;
    } else if (flag === '--keep') options.keep = true;
    else throw new Error(`host-down: unknown argument '${args[i]}'\n\n${usage}`);
  }
  return options;
}

interface ApiResult<T> {
  status: number;
  body: T;
}

interface HostEvent {
  action: string;
  notes: string;
  data: Record<string, unknown>;
  at: string;
}

interface ServerView {
  id: string;
  status: string;
  lastError: string | null;
  host: { id: string; name: string | null };
  live: { status?: string; heartbeat?: { counter: number } | null } | null;
}

interface MigrationRow {
  id: string;
  kind: string;
  trigger: string;
  phase: string;
  error: string | null;
  workflowId: string | null;
  destination: { name: string | null } | null;
  timings: Record<string, { startedAt: number; endedAt?: number }>;
}

/** The orchestrator in this process, as test/helpers/mini-stack.ts wires it, with the workers' host watch. */
interface Stack {
  temporal: Client;
  agents: Map<string, RunningAgent>;
  agentDir(host: string): string;
  api<T>(method: string, urlPath: string, body?: unknown): Promise<ApiResult<T>>;
  restartAgent(host: string): Promise<void>;
  /** When the etcd watch last saw each host's health key go (host id -> epoch ms). */
  keyDeletedAt: Map<string, number>;
  stop(): Promise<void>;
}

async function startStack(servers: BenchServers, root: string): Promise<Stack> {
  try {
    Runtime.install({ logger: new DefaultLogger('WARN') });
  } catch {
    // Installed already (another benchmark in this process).
  }
  const apiToken = randomUUID();
  const agentToken = randomUUID();
  const taskQueue = `bench-${randomUUID()}`;
  const etcdPrefix = 'vmmig-bench';
  const etcd = { endpoints: servers.etcd.endpoints, prefix: etcdPrefix };
  const { namespace, address } = servers.temporal;
  const logDir = path.join(root, 'logs');
  mkdirSync(logDir, { recursive: true });

  const stops: { what: string; stop: () => Promise<void> }[] = [];
  const stopAll = async () => {
    for (const { what, stop } of stops.reverse()) {
      await stop().catch((error: unknown) => console.error(`stopping ${what}: ${String(error)}`));
    }
  };
  const agents = new Map<string, RunningAgent>();
  try {
    const db = connectDb(servers.databaseUrl);
    stops.push({ what: 'database pool', stop: () => db.close() });
    const connection = await Connection.connect({ address });
    stops.push({ what: 'Temporal client', stop: () => connection.close() });
    const temporal = new Client({ connection, namespace });
    const liveness = new HostLiveness(etcd);
    stops.push({ what: 'etcd client', stop: async () => liveness.close() });

    const app = createApp({ db: db.db, temporal, taskQueue, liveness, agentToken, apiToken });
    const server = serve({ fetch: app.fetch, hostname: '127.0.0.1', port: 0 });
    await new Promise<void>((resolve) => server.once('listening', resolve));
    stops.push({
      what: 'API server',
      stop: () => new Promise<void>((resolve) => server.close(() => resolve())),
    });
    const apiUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

    const nativeConnection = await NativeConnection.connect({ address });
    stops.push({ what: 'worker connection', stop: () => nativeConnection.close() });
    const activities = createActivities({ db: db.db, agentToken, liveness, temporal });
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
        if (worker.getState() === 'RUNNING') worker.shutdown();
        await running;
      },
    });

    // What a worker process runs beside its worker: production timings (fencing margin, migration polls).
    const hostWatch = new HostWatch({
      etcd,
      temporal,
      taskQueue,
      log: (line) =>
        appendFileSync(path.join(logDir, 'host-watch.log'), `${new Date().toISOString()} ${line}\n`),
      timings: DEFAULT_HOST_DOWN_TIMINGS,
      migrationTimings: DEFAULT_TIMINGS,
    });
    await hostWatch.start();
    stops.push({ what: 'host watch', stop: () => hostWatch.stop() });

    // Our own view of the health keys: when etcd expired each lease, as a watcher learns it.
    const keyDeletedAt = new Map<string, number>();
    const observer = new Etcd3({ hosts: etcd.endpoints });
    const prefix = hostHealthPrefix(etcdPrefix);
    const watcher = await observer.watch().prefix(prefix).create();
    watcher.on('delete', (kv) => keyDeletedAt.set(kv.key.toString().slice(prefix.length), Date.now()));
    stops.push({
      what: 'etcd observer',
      stop: async () => {
        await watcher.cancel().catch(() => undefined);
        observer.close();
      },
    });

    const optionsOf = (host: string): AgentOptions => ({
      name: host,
      host: '127.0.0.1',
      port: 0,
      dir: path.join(root, 'agents', host),
      token: agentToken,
      driver: 'qemu',
      sharedStorageDir: path.join(root, 'shared'),
      guestImageDir: guestImageDir(),
      migrationAddress: null,
      networks: [...DEFAULTS.agentNetworks],
      liveness: { endpoints: etcd.endpoints, prefix: etcdPrefix, ttlSeconds: DEFAULTS.healthTtlSeconds },
      metrics: null,
      registration: { apiUrl, apiToken },
      log: (message) =>
        appendFileSync(path.join(logDir, `agent-${host}.log`), `${new Date().toISOString()} ${message}\n`),
    });
    for (const host of HOSTS) agents.set(host, await startAgent(optionsOf(host)));
    stops.push({
      what: 'agents',
      stop: async () => {
        await Promise.all([...agents.values()].map((agent) => agent.stop()));
      },
    });

    const api = async <T>(method: string, urlPath: string, body?: unknown): Promise<ApiResult<T>> => {
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

    const stack: Stack = {
      temporal,
      agents,
      agentDir: (host) => path.join(root, 'agents', host),
      api,
      async restartAgent(host) {
        agents.set(host, await startAgent(optionsOf(host)));
      },
      keyDeletedAt,
      stop: stopAll,
    };
    await waitUntil('every host online', 60_000, async () => {
      const online = (await hostsView(stack)).filter((h) => h.status === 'online').length;
      return online === HOSTS.length ? true : null;
    });
    return stack;
  } catch (error) {
    await stopAll();
    throw error;
  }
}

async function hostsView(stack: Stack): Promise<{ id: string; name: string; status: string }[]> {
  return (await stack.api<{ hosts: { id: string; name: string; status: string }[] }>('GET', '/v1/hosts')).body
    .hosts;
}

/** Polls `probe` every POLL_MS until it returns a value; the error names what was awaited. */
async function waitUntil<T>(what: string, timeoutMs: number, probe: () => Promise<T | null>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (value !== null) return value;
    } catch (error) {
      lastError = error;
    }
    if (Date.now() > deadline)
      throw new Error(
        `timed out after ${timeoutMs} ms waiting for ${what}${lastError ? `: ${String(lastError)}` : ''}`,
      );
    await sleep(POLL_MS);
  }
}

/**
 * The QEMU processes of one host: every process whose command line names a path under its agent dir
 * (pid file, QMP socket, serial log), and the live pids its guests' qemu.pid files hold.
 */
async function qemuPidsOf(agentDir: string): Promise<number[]> {
  const marker = `${agentDir}${path.sep}`;
  const pids = new Set(
    listProcesses()
      .filter((p) => /qemu/.test(p.cmdline.split(' ')[0] ?? '') && p.cmdline.includes(marker))
      .map((p) => p.pid),
  );
  const guestsDir = path.join(agentDir, 'guests');
  for (const id of await readdir(guestsDir).catch(() => [] as string[])) {
    const pid = Number((await readFile(path.join(guestsDir, id, 'qemu.pid'), 'utf8').catch(() => '')).trim());
    if (Number.isInteger(pid) && pid > 0 && (await processCommandLine(pid)).some((a) => a.includes(marker)))
      pids.add(pid);
  }
  return [...pids];
}

const serialLog = (stack: Stack, host: string, guestId: string) =>
  readFile(path.join(stack.agentDir(host), 'guests', guestId, 'serial.log'), 'latin1').catch(() => '');

async function hostEvents(stack: Stack, host: string, since: number): Promise<HostEvent[]> {
  const { events } = (await stack.api<{ events: HostEvent[] }>('GET', `/v1/hosts/${host}/events`)).body;
  return events.filter((e) => new Date(e.at).getTime() >= since);
}

async function eventAfter(stack: Stack, host: string, action: string, since: number, timeoutMs: number) {
  const event = await waitUntil(`${action} on ${host}`, timeoutMs, async () => {
    return (await hostEvents(stack, host, since)).find((e) => e.action === action) ?? null;
  });
  return { event, at: new Date(event.at).getTime() };
}

interface HistoryCounts {
  events: number;
  activities: number;
  workflowTasks: number;
  timers: number;
  children: number;
  activityNames: string[];
}

async function historyCounts(temporal: Client, workflowId: string): Promise<HistoryCounts> {
  const history = await temporal.workflow.getHandle(workflowId).fetchHistory();
  const events = history.events ?? [];
  const run = readRunHistory(events);
  return {
    events: events.length,
    activities: events.filter((e) => e.activityTaskScheduledEventAttributes).length,
    workflowTasks: run.workflowTasks.length,
    timers: events.filter((e) => e.timerStartedEventAttributes).length,
    children: events.filter((e) => e.startChildWorkflowExecutionInitiatedEventAttributes).length,
    activityNames: events.flatMap((e) => {
      const name = e.activityTaskScheduledEventAttributes?.activityType?.name;
      return name ? [name] : [];
    }),
  };
}

interface Round {
  index: number;
  victim: string;
  destination: string;
  /** Epoch ms: the agent's stop called (its QEMUs SIGKILLed right after). */
  killedAt: number;
  killMs: number;
  keyGoneMs: number;
  leaseLostMs: number;
  rescueStartMs: number;
  migrationCompletedMs: number;
  firstHeartbeatMs: number;
  advancingMs: number;
  otherCpu: number;
  diskCheck: string;
  evidence: string;
  hostDown: HistoryCounts;
  coldMigrate: HistoryCounts;
}

async function runRound(stack: Stack, index: number, print: (line?: string) => void): Promise<Round> {
  const victim = HOSTS[(index - 1) % HOSTS.length] as string;
  const guestName = `hd-bench-${index}`;
  const mac = `52:54:00:bd:00:${(index % 256).toString(16).padStart(2, '0')}`;
  const created = await stack.api<{ server?: { id: string } }>('POST', '/v1/servers', {
    name: guestName,
    host: victim,
    vcpus: 1,
    memoryMb: 256,
    diskTest: true,
    networks: [{ name: 'default', mac }],
    disks: [{ id: 'disk0', sizeMb: 64, storage: 'shared', cache: 'none' }],
  });
  if (created.status !== 202 || !created.body.server)
    throw new Error(`POST /v1/servers ${guestName}: ${created.status} ${JSON.stringify(created.body)}`);
  const guestId = created.body.server.id;
  await waitUntil(`${guestName} running on ${victim}`, 180_000, async () => {
    const s = (await stack.api<ServerView>('GET', `/v1/servers/${guestId}`)).body;
    if (s.status === 'error') throw new Error(`${guestName} could not start: ${s.lastError}`);
    return s.status === 'running' && s.live?.heartbeat ? s : null;
  });
  // Its disk check has run once on the victim (or the image cannot run it).
  const victimLog = await waitUntil(`the disk check of ${guestName} on ${victim}`, 90_000, async () => {
    const log = await serialLog(stack, victim, guestId);
    return /^DISK (READ .* ok|UNAVAILABLE)/m.test(log) ? log : null;
  });
  const diskTestRuns = !/^DISK UNAVAILABLE/m.test(victimLog);

  const victimDir = stack.agentDir(victim);
  const pids = await qemuPidsOf(victimDir);
  if (pids.length === 0) throw new Error(`no QEMU process found under ${victimDir}`);
  const hostId = stack.agents.get(victim)!.hostId;
  const cpuBefore = cpuSnapshot();

  // The host dies: keepalives stop (the lease is left to expire, not revoked), then its QEMUs are SIGKILLed.
  const killedAt = Date.now();
  await stack.agents.get(victim)!.stop({ leaveGuests: true });
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // Gone already.
    }
  }
  const killMs = Date.now() - killedAt;
  await waitUntil(`the QEMU processes of ${victim} gone`, 10_000, async () => {
    for (const pid of pids) if (await processAlive(pid)) return null;
    return true;
  });

  const leaseLost = await eventAfter(stack, victim, 'host_lease_lost', killedAt, 120_000);
  const rescueStart = await eventAfter(stack, victim, 'host_down_auto_migrate_start', killedAt, 120_000);
  let first: { counter: number; at: number; host: string } | null = null;
  const advancedAt = await waitUntil(
    `${guestName} running elsewhere with an advancing heartbeat`,
    180_000,
    async () => {
      const s = (await stack.api<ServerView>('GET', `/v1/servers/${guestId}`)).body;
      const counter = s.live?.heartbeat?.counter;
      if (s.status !== 'running' || !s.host.name || s.host.name === victim || counter === undefined)
        return null;
      if (first === null || first.host !== s.host.name) {
        first = { counter, at: Date.now(), host: s.host.name };
        return null;
      }
      return counter > first.counter ? Date.now() : null;
    },
  );
  const moved = first as { counter: number; at: number; host: string } | null;
  if (moved === null) throw new Error('no heartbeat seen on the destination');
  const otherCpu = cpuBetween(cpuBefore, cpuSnapshot()).other;

  const rescue = await waitUntil(`the rescue migration of ${guestName} completed`, 60_000, async () => {
    const { migrations } = (
      await stack.api<{ migrations: MigrationRow[] }>('GET', `/v1/migrations?guest=${guestName}`)
    ).body;
    const row = migrations[0];
    if (row && ['failed', 'cancelled'].includes(row.phase))
      throw new Error(`rescue ${row.phase}: ${row.error}`);
    return row?.phase === 'completed' ? row : null;
  });
  if (rescue.kind !== 'rescue' || rescue.trigger !== 'host-down')
    throw new Error(
      `the last migration of ${guestName} is ${rescue.kind}/${rescue.trigger}, not rescue/host-down`,
    );
  const completedAt = rescue.timings.completed?.startedAt ?? Number.NaN;

  // Not timed: the guest's disk check on its new host, and the runs' histories.
  let diskCheck = 'not run (image without virtio_blk)';
  if (diskTestRuns) {
    const ok = await waitUntil(`a DISK READ ok on ${moved.host}`, 60_000, async () =>
      /^DISK READ .* ok/m.test(await serialLog(stack, moved.host, guestId)) ? true : null,
    ).catch(() => false);
    diskCheck = ok ? 'ok' : 'NO DISK READ ok within 60 s';
  }
  const bad = [await serialLog(stack, moved.host, guestId), victimLog]
    .join('\n')
    .split('\n')
    .find((l) => /DISK (CORRUPT|ERROR)|DIRTIER CORRUPT|Kernel panic/.test(l));
  if (bad) diskCheck = `FAILED: ${bad.trim()}`;

  const leaseHex = String(leaseLost.event.data.leaseId);
  const hostDownId = hostDownWorkflowId(hostId, leaseHex);
  await stack.temporal.workflow.getHandle(hostDownId).result();
  const hostDown = await historyCounts(stack.temporal, hostDownId);
  const coldMigrate = await historyCounts(
    stack.temporal,
    rescue.workflowId ?? coldMigrationWorkflowId(guestId),
  );
  const confirmed = (await hostEvents(stack, victim, killedAt)).find((e) => e.action === 'host_down');
  const evidence = ((confirmed?.data.evidence as string[] | undefined) ?? []).join('; ');

  // Back to two live hosts and no busy guest: the guest stops, the dead host's agent starts again and its
  // return run removes the stale copy there.
  const stopped = await stack.api('POST', `/v1/servers/${guestId}/stop`);
  if (stopped.status !== 202)
    print(`WARNING: stopping ${guestName}: ${stopped.status} ${JSON.stringify(stopped.body)}`);
  else
    await waitUntil(`${guestName} stopped`, 60_000, async () =>
      (await stack.api<ServerView>('GET', `/v1/servers/${guestId}`)).body.status === 'ready' ? true : null,
    );
  const restartedAt = Date.now();
  await stack.restartAgent(victim);
  await waitUntil(`${victim} online again`, 60_000, async () =>
    (await hostsView(stack)).find((h) => h.name === victim)?.status === 'online' ? true : null,
  );
  await eventAfter(stack, victim, 'host_returned', restartedAt, 60_000).catch(() =>
    print(`WARNING: no host_returned event on ${victim} within 60 s of its restart`),
  );

  const keyGoneAt = stack.keyDeletedAt.get(hostId) ?? Number.NaN;
  return {
    index,
    victim,
    destination: moved.host,
    killedAt,
    killMs,
    keyGoneMs: keyGoneAt - killedAt,
    leaseLostMs: leaseLost.at - killedAt,
    rescueStartMs: rescueStart.at - killedAt,
    migrationCompletedMs: completedAt - killedAt,
    firstHeartbeatMs: moved.at - killedAt,
    advancingMs: advancedAt - killedAt,
    otherCpu,
    diskCheck,
    evidence,
    hostDown,
    coldMigrate,
  };
}

const sec = (value: number) => (Number.isFinite(value) ? `${(value / 1000).toFixed(2)} s` : '-');

/** The phases of a round, each from the previous mark; they add up to the total. */
function phases(r: Round) {
  return {
    detection: r.leaseLostMs,
    leaseExpiry: r.keyGoneMs,
    noticed: r.leaseLostMs - r.keyGoneMs,
    fencing: r.rescueStartMs - r.leaseLostMs,
    restart: r.advancingMs - r.rescueStartMs,
    rescueRun: r.migrationCompletedMs - r.rescueStartMs,
    boot: r.firstHeartbeatMs - r.migrationCompletedMs,
    secondBeat: r.advancingMs - r.firstHeartbeatMs,
    total: r.advancingMs,
  };
}

function report(rounds: Round[], print: (line?: string) => void): void {
  print(
    table(
      [
        'round',
        'victim -> to',
        'detection',
        '(lease',
        'noticed)',
        'fence+confirm',
        'restart',
        '(rescue',
        'boot',
        '2nd HB)',
        'total',
        'other CPU',
        'disk check',
      ],
      rounds.map((r) => {
        const p = phases(r);
        return [
          String(r.index),
          `${r.victim} -> ${r.destination}`,
          sec(p.detection),
          sec(p.leaseExpiry),
          sec(p.noticed),
          sec(p.fencing),
          sec(p.restart),
          sec(p.rescueRun),
          sec(p.boot),
          sec(p.secondBeat),
          sec(p.total),
          r.otherCpu.toFixed(2),
          r.diskCheck,
        ];
      }),
    ),
  );
  print();
  const all = rounds.map(phases);
  const line = (label: string, key: keyof ReturnType<typeof phases>, what: string) => {
    const s = summarize(all.map((p) => p[key]));
    return [label, ms(s.median), `${ms(s.min)} – ${ms(s.max)}`, what];
  };
  print(
    table(
      ['phase', 'median', 'min – max', 'from -> to'],
      [
        line('detection', 'detection', 'kill -> host_lease_lost event'),
        line('  lease expiry', 'leaseExpiry', 'kill -> health key deleted (etcd watch)'),
        line('  noticed', 'noticed', 'key deleted -> host_lease_lost (watch, hostDown start, probe, event)'),
        line(
          'fencing wait + confirm',
          'fencing',
          `host_lease_lost -> host_down_auto_migrate_start (margin ${fencingWaitMs(DEFAULT_HOST_DOWN_TIMINGS)} ms, probe, plan)`,
        ),
        line('restart', 'restart', 'rescue start -> heartbeat advancing on the new host'),
        line(
          '  rescue run',
          'rescueRun',
          'rescue start -> migration row completed (coldMigrate; QEMU started)',
        ),
        line('  guest boot', 'boot', 'completed -> first heartbeat seen'),
        line('  second heartbeat', 'secondBeat', 'first heartbeat -> a higher counter'),
        line('total', 'total', 'kill -> guest running elsewhere, heartbeat advancing'),
      ],
    ),
  );
  print();
  const total = summarize(all.map((p) => p.total)).median;
  const verdict = total <= TARGET_MEDIAN_TOTAL_MS ? 'MET' : 'MISSED';
  print(`median total ${sec(total)}: target <= ${sec(TARGET_MEDIAN_TOTAL_MS)}: ${verdict}`);
  print(
    `Cloudpods (lease 10 s + 60 s + a ping) ~${sec(CLOUDPODS_MS)}: ${(CLOUDPODS_MS / total).toFixed(1)}x ours; ` +
      `Masakari's default wait alone ${sec(MASAKARI_WAIT_MS)} (before detection and restart): ${(MASAKARI_WAIT_MS / total).toFixed(1)}x ours`,
  );
  print();
  print('Counts that do not depend on the machine (per round):');
  print(
    table(
      [
        'round',
        'hostDown events',
        'activities',
        'wf tasks',
        'timers',
        'children',
        'coldMigrate events',
        'activities',
        'wf tasks',
      ],
      rounds.map((r) => [
        String(r.index),
        String(r.hostDown.events),
        String(r.hostDown.activities),
        String(r.hostDown.workflowTasks),
        String(r.hostDown.timers),
        String(r.hostDown.children),
        String(r.coldMigrate.events),
        String(r.coldMigrate.activities),
        String(r.coldMigrate.workflowTasks),
      ]),
    ),
  );
  const last = rounds.at(-1);
  if (last) {
    print(`hostDown activities: ${last.hostDown.activityNames.join(', ')}`);
    print(`coldMigrate activities: ${last.coldMigrate.activityNames.join(', ')}`);
    print(`host_down evidence: ${last.evidence}`);
  }
}

function revisionLine(): string {
  const git = (...args: string[]) => spawnSync('git', args, { cwd: repoRoot, encoding: 'utf8' }).stdout ?? '';
  const head = git('log', '-1', '--format=%h %s').trim().slice(0, 80);
  const dirty = git('status', '--porcelain', '--untracked-files=no')
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => line.slice(3));
  return `${head || 'unknown'}${dirty.length > 0 ? ` + uncommitted changes in ${dirty.join(', ')}` : ''}`;
}

function machineLine(): string {
  const cpus = os.cpus();
  const qemu = spawnSync('qemu-system-x86_64', ['--version'], { encoding: 'utf8' }).stdout?.split('\n')[0];
  return (
    `${cpus.length} x ${cpus[0]?.model ?? 'unknown CPU'}, ${(os.totalmem() / 2 ** 30).toFixed(1)} GiB RAM, ` +
    `Linux ${os.release()}, ${qemu ?? 'QEMU ?'}, Node ${process.version}`
  );
}

export async function run(args: string[]): Promise<void> {
  const options = parseOptions(args);
  const print = (line = '') => console.log(line);
  const root = mkdtempSync(path.join(os.tmpdir(), 'vmmig-bench-hd-'));
  // mkdtemp makes it 0700; postgres runs as the postgres user and must be able to enter it.
  chmodSync(root, 0o755);
  const exitHook = () => void killProcessesUnder(root);
  process.on('exit', exitHook);

  let servers: BenchServers | undefined;
  let stack: Stack | undefined;
  let failed = true;
  let cleaned = false;
  const cleanup = async () => {
    if (cleaned) return;
    cleaned = true;
    await stack?.stop();
    await servers?.stop();
    const leftovers = await reapProcessesUnder(root);
    const remaining = processesUnder(root);
    print(
      (leftovers.length === 0
        ? 'stopped everything; no process left behind'
        : `WARNING: had to kill ${leftovers.length} leftover process(es): ${leftovers.map((p) => `${p.pid} ${p.cmdline.slice(0, 60)}`).join('; ')}`) +
        (remaining.length > 0 ? `; STILL RUNNING: ${remaining.map((p) => p.pid).join(', ')}` : ''),
    );
    if (options.keep || failed) print(`logs and guest consoles kept in ${root}`);
    else rmSync(root, { recursive: true, force: true });
    process.off('exit', exitHook);
  };
  addCleanup(cleanup);

  print(`host-down: ${summary}`);
  print(`machine: ${machineLine()}`);
  print(`code: ${revisionLine()}`);
  print(
    `settings: lease TTL ${DEFAULTS.healthTtlSeconds} s, fencing margin ${fencingWaitMs(DEFAULT_HOST_DOWN_TIMINGS)} ms, ` +
      `migration timings DEFAULT_TIMINGS (poll ${DEFAULT_TIMINGS.pollIntervalMs} ms); ${options.rounds} round(s)`,
  );
  print(`temp dir: ${root}`);
  print();

  try {
    let t = Date.now();
    servers = await startBenchServers(root);
    print(`servers: Temporal, PostgreSQL and etcd up in ${ms(Date.now() - t)}`);
    t = Date.now();
    stack = await startStack(servers, root);
    print(
      `orchestrator: API, worker, host watch, agents ${HOSTS.join(' and ')} (QEMU driver) up in ${ms(Date.now() - t)}`,
    );
    for (const host of HOSTS) {
      const res = await stack.api('POST', `/v1/hosts/${host}/auto-migrate-on-host-down`, {
        auto_migrate_on_host_down: 'enable',
      });
      if (res.status !== 200)
        throw new Error(`enabling auto-migrate on ${host}: ${res.status} ${JSON.stringify(res.body)}`);
    }
    print();

    const rounds: Round[] = [];
    for (let i = 1; i <= options.rounds; i++) {
      const round = await runRound(stack, i, print);
      rounds.push(round);
      const p = phases(round);
      print(
        `round ${i}: ${round.victim} killed (stop + SIGKILL ${ms(round.killMs)}), guest on ${round.destination}: ` +
          `detection ${sec(p.detection)}, fencing+confirm ${sec(p.fencing)}, restart ${sec(p.restart)}, ` +
          `total ${sec(p.total)}; disk check ${round.diskCheck}`,
      );
    }
    print();
    writeFileSync(path.join(root, 'results.json'), `${JSON.stringify(rounds, null, 2)}\n`);
    report(rounds, print);
    print();
    failed = false;
  } finally {
    await runCleanups();
  }
}
