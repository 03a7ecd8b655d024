import { Client, Connection } from '@temporalio/client';
import { randomUUID } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { stripVTControlCharacters } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { readFile } from 'node:fs/promises';
import { sql } from 'drizzle-orm';
import { planFleet } from '../../agent/fleet-plan.ts';
import { connectDb } from '../../db/client.ts';
import { jsonApi } from '../../scripts/services/in-process-stack.ts';
import { freePort } from '../../scripts/services/ports.ts';
import { waitFor } from '../../test/helpers/wait.ts';
import { parseFlags } from '../lib/args.ts';
import { runCleanups } from '../lib/lifecycle.ts';
import { limitCpu, type CpuQuota } from '../lib/cpu-quota.ts';
import { UsageMeter, type UsageWindow } from '../lib/process-usage.ts';
import { machineLine, revisionLine } from '../lib/provenance.ts';
import { startBenchServers } from '../lib/servers.ts';
import { ms } from '../lib/stats.ts';
import { benchWorkdir } from '../lib/workdir.ts';
import {
  historyCounts,
  influxPointsWritten,
  pageReads,
  sustainMigrations,
  tableWrites,
  triggerCycle,
  writesBetween,
  type Api,
} from './measure.ts';
import { startEntryPoint, type BenchProcess } from './processes.ts';
import { reportCycles, reportIdle, reportPages, reportSustained, type FleetFigures } from './report.ts';
import { guestsFile, hotHostNames, insertGuestRows, insertMigrationHistory, planGuests } from './seed.ts';

export const name = 'fleet';

export const summary =
  '1,000 sim hosts and 20,000 guests (one agent process): page reads, alert cycles, sustained migrations on 1 and 2 workers';

export const usage = `npm run bench -- fleet [--hosts N] [--guests-per-host N] [--hot-hosts N] [--history N]
                         [--in-flight N] [--warmup-s S] [--window-s S] [--page-reads N] [--temporal-in-memory]
                         [--worker-cpu-percent P] [--keep] [--json FILE]

  --hosts N            sim hosts, all in one agent process (agent/fleet.ts); default 1000
  --guests-per-host N  running guests per host; default 20 (so 20,000)
  --hot-hosts N        32-CPU hosts carrying a CPU hog, for the alert cycle with moves; default 50
  --history N          finished migrations (5 events each) seeded for the migration list; default 20000
  --in-flight N        live migrations kept in flight in the sustained runs; default 40
  --warmup-s S         sustained runs: seconds before the measured window; default 30
  --window-s S         sustained runs: the measured window, seconds; default 120
  --page-reads N       reads of each list, 100 items a page; default 300
  --temporal-in-memory the Temporal dev server without its SQLite file (a diagnostic: how much of a figure is
                       Temporal's persistence; npm start and the other benchmarks keep the file)
  --worker-cpu-percent P
                       hold each worker process to P % of one CPU (a cgroup of its own; needs root), so that on a
                       machine of few cores two workers are measured as two hosts' workers would be, each with a
                       core of its own, instead of sharing the cores the rest of the stack is using; default 0 (no hold)
  --keep               keep the temporary directory (logs of every process) after the run
  --json FILE          also write the figures to FILE
  Quick try: npm run bench -- fleet --hosts 50 --guests-per-host 4 --hot-hosts 5 --history 500 --window-s 30`;

interface Options {
  hosts: number;
  guestsPerHost: number;
  hotHosts: number;
  history: number;
  inFlight: number;
  warmupS: number;
  windowS: number;
  pageReads: number;
  temporalInMemory: boolean;
  workerCpuPercent: number;
  keep: boolean;
  json: string | null;
}

function parseOptions(args: string[]): Options {
  const options = parseFlags(
    { name, usage },
    args,
    {
      hosts: 1000,
      guestsPerHost: 20,
      hotHosts: 50,
      history: 20_000,
      inFlight: 40,
      warmupS: 30,
      windowS: 120,
      pageReads: 300,
      temporalInMemory: false,
      workerCpuPercent: 0,
      keep: false,
      json: null,
    } as Options,
    {
      '--hosts': { key: 'hosts', min: 4 },
      '--guests-per-host': { key: 'guestsPerHost', min: 2 },
      '--hot-hosts': { key: 'hotHosts', min: 1 },
      '--history': { key: 'history', min: 0 },
      '--in-flight': { key: 'inFlight', min: 1 },
      '--warmup-s': { key: 'warmupS', min: 0 },
      '--window-s': { key: 'windowS', min: 10 },
      '--page-reads': { key: 'pageReads', min: 10 },
      '--temporal-in-memory': { key: 'temporalInMemory', switch: true },
      '--worker-cpu-percent': { key: 'workerCpuPercent', min: 0 },
      '--keep': { key: 'keep', switch: true },
      '--json': { key: 'json', text: true },
    },
  );
  if (options.hotHosts * 2 > options.hosts) throw new Error('--hot-hosts must leave most hosts cool');
  return options;
}

/** The idle fleet is watched this long for its steady costs (reports, keepalives, metrics). */
const IDLE_S = 60;
/** Alert rules average over one period; the fleet writes metrics every METRICS_INTERVAL_S. */
const RULE_PERIOD = '1m';
const METRICS_INTERVAL_S = 10;
/** A 32-CPU host with a hog is at ~60 %, every other host under 15 %, a 64-CPU host given the hog ~30 %. */
const HOT_THRESHOLD = 45;

export async function run(args: string[]): Promise<void> {
  const options = parseOptions(args);
  const print = (line = '') => console.log(line);
  const { root, succeeded, track } = benchWorkdir({
    prefix: 'vmmig-bench-fleet-',
    keep: options.keep,
    print,
  });
  const logDir = path.join(root, 'logs');
  const plans = planFleet({ count: options.hosts, prefix: 'sim-', seed: 1 });
  const hotHosts = hotHostNames(plans, options.hotHosts);
  const guests = planGuests(plans, {
    guestsPerHost: options.guestsPerHost,
    hotHosts,
    memoryMb: 4096,
    dirtyMibs: 8,
  });

  print(`fleet: ${summary}`);
  print(`machine: ${machineLine(null)}`);
  print(`code: ${revisionLine()}`);
  print(
    `fleet: ${options.hosts} sim hosts (32–96 CPUs, 256–768 GiB), ${guests.length} running guests ` +
      `(${options.guestsPerHost} per host, 2 vCPU, 4 GiB, dirtying 8 MiB/s; ${hotHosts.size} of the ` +
      `32-CPU hosts carry a hog: 16 vCPUs nearly all busy, 8 GiB); metrics every ${METRICS_INTERVAL_S} s, state reports every 10 s`,
  );
  print(`temp dir: ${root}`);
  print();

  try {
    let t = Date.now();
    const servers = track(
      await startBenchServers(root, { influx: true, temporalInMemory: options.temporalInMemory }),
      'servers',
    );
    const influxUrl = servers.influx!.url;
    print(
      `servers: Temporal${options.temporalInMemory ? ' (in memory, no SQLite file)' : ''}, PostgreSQL, etcd, InfluxDB 1.x up in ${ms(Date.now() - t)}`,
    );
    const db = connectDb(servers.databaseUrl);
    track({ stop: () => db.close() }, 'database pool');

    const apiToken = `vmt_${randomUUID().replaceAll('-', '')}`;
    const credentialKey = randomUUID();
    const common: NodeJS.ProcessEnv = {
      ...process.env,
      DATABASE_URL: servers.databaseUrl,
      TEMPORAL_ADDRESS: servers.temporal.address,
      TEMPORAL_NAMESPACE: servers.temporal.namespace,
      TEMPORAL_TASK_QUEUE: 'vm-migration',
      ETCD_ENDPOINTS: servers.etcd.endpoints.join(','),
      ETCD_PREFIX: 'vmmig-fleet',
      INFLUX_URL: influxUrl,
      AGENT_CREDENTIAL_KEY: credentialKey,
    };
    const apiPort = await freePort();
    const apiUrl = `http://127.0.0.1:${apiPort}`;
    const processes = new Map<string, BenchProcess>();
    const start = async (label: string, entry: string, env: NodeJS.ProcessEnv, ready: RegExp) => {
      const started = track(
        await startEntryPoint({ name: label, entry, env: { ...common, ...env }, logDir, ready }),
        label,
      );
      processes.set(label, started);
      return started;
    };
    const quotas = new Map<string, CpuQuota>();
    /** Only the sustained runs hold the workers: the alert cycles are measured as production runs them. */
    const holdWorker = (label: string) => {
      if (options.workerCpuPercent === 0) return;
      const pid = processes.get(label)!.pid;
      const quota = limitCpu(pid, `vmmig-bench-fleet-${label}-${pid}`, options.workerCpuPercent / 100);
      track({ stop: async () => quota.remove() }, `${label} cpu hold`);
      quotas.set(label, quota);
      print(`  ${label} held to ${options.workerCpuPercent} % of a CPU (${quota.dir})`);
    };

    t = Date.now();
    await start(
      'api',
      'api/main.ts',
      { API_TOKEN: apiToken, API_HOST: '127.0.0.1', API_PORT: String(apiPort) },
      /API listening on/,
    );
    print(`orchestrator: API (its own process) up in ${ms(Date.now() - t)}`);
    const raw = jsonApi(apiUrl, apiToken) as Api;
    // A read may meet a keep-alive connection the loaded API has just closed ('fetch failed'): read it again.
    const api: Api = <T>(method: string, urlPath: string, body?: unknown) =>
      raw<T>(method, urlPath, body).catch((error: unknown) => {
        if (method !== 'GET') throw error;
        return raw<T>(method, urlPath, body);
      });

    const guestsPath = path.join(root, 'guests.json');
    writeFileSync(guestsPath, JSON.stringify(guestsFile(guests)));
    t = Date.now();
    await start(
      'fleet',
      'agent/fleet.ts',
      {
        SIM_FLEET_HOSTS: String(options.hosts),
        SIM_FLEET_DIR: path.join(root, 'fleet'),
        SIM_FLEET_PREFIX: 'sim-',
        SIM_FLEET_SEED: '1',
        SIM_FLEET_CREDENTIAL_KEY: credentialKey,
        SIM_FLEET_API_TOKEN: apiToken,
        SIM_FLEET_GUESTS_FILE: guestsPath,
        // Each host's lines too (a few at start, then only what goes wrong: a renewal, a report).
        SIM_FLEET_QUIET: 'false',
        SIM_FLEET_REGISTER_SPREAD_S: '60',
        API_URL: apiUrl,
        AGENT_HOST: '127.0.0.1',
        AGENT_PEER_TOKEN: randomUUID(),
        AGENT_SIM_LINK_MBPS: '10000',
        METRICS_INTERVAL_S: String(METRICS_INTERVAL_S),
      },
      /sim hosts running/,
    );
    const fleetStartedMs = Date.now() - t;
    await waitFor(
      `${options.hosts} hosts registered`,
      async () => {
        const rows = await db.db.execute<{ n: string }>(sql`select count(*)::text as n from hosts`);
        return Number(rows.rows[0]?.n) >= options.hosts;
      },
      { timeoutMs: 5 * 60_000, intervalMs: 1_000 },
    );
    print(
      `fleet: ${options.hosts} hosts started in ${ms(fleetStartedMs)}, all registered ${ms(Date.now() - t)} after the start`,
    );

    t = Date.now();
    await insertGuestRows(db.db, guests);
    await insertMigrationHistory(db.db, options.history);
    print(
      `seeded: ${guests.length} guest rows (the fleet runs them), ${options.history} finished migrations with ` +
        `${options.history * 5} events, in ${ms(Date.now() - t)}`,
    );

    // The worker only now: its host watch reconciles each host whose lease appeared (hostReturn), and a guest the
    // inventory does not hold yet would be removed from its host as one that no longer exists.
    t = Date.now();
    await start('worker-1', 'workers/main.ts', {}, /worker polling/);
    print(
      `worker: its own process, up in ${ms(Date.now() - t)} (its host watch then reconciles the ${options.hosts} new leases)`,
    );
    // Statistics of idle connections reach pg_stat_user_tables within 10 s: the seeding must not count as idle.
    await sleep(11_000);
    const roots = () =>
      new Map([
        ...[...processes].map(([label, p]) => [label, p.pid] as const),
        ['temporal', servers.temporal.process.pid],
        ['postgres', servers.postgres.process.pid],
        ['etcd', servers.etcd.process.pid],
        ['influxd', servers.influx!.process.pid],
      ]);
    const meter = new UsageMeter(roots);
    /** A host that lost its lease is offline for a while: the figures after it are not those of a healthy fleet. */
    const leaseCheck = async () => {
      const rows = await db.db.execute<{ n: string }>(
        sql`select count(*)::text as n from events where type = 'host_lease_lost'`,
      );
      const lost = Number(rows.rows[0]?.n);
      print(
        lost === 0
          ? '  (no host has lost its lease so far)'
          : `  WARNING: ${lost} host leases lost so far (hostDown runs): those hosts were offline for a while`,
      );
      print();
    };

    /** CPU and memory of every process, PostgreSQL rows written and InfluxDB points over a window. */
    const openWindow = async () => {
      const writes0 = await tableWrites(db.db);
      const points0 = await influxPointsWritten(influxUrl);
      meter.start();
      return async () => {
        const usage: UsageWindow = meter.end();
        const writes = writesBetween(writes0, await tableWrites(db.db));
        const influxPoints = (await influxPointsWritten(influxUrl)) - points0;
        return { usage, writes, influxPoints };
      };
    };
    const windowOf = async <T>(work: () => Promise<T>) => {
      const close = await openWindow();
      const result = await work();
      return { result, ...(await close()) };
    };

    print(`idle: watching the fleet for ${IDLE_S} s…`);
    const idle = await windowOf(() => sleep(IDLE_S * 1000));
    reportIdle({ idle, hosts: options.hosts }, print);
    await leaseCheck();

    print(`page reads: ${options.pageReads} of each list…`);
    const pages = await windowOf(async () => ({
      servers: await pageReads(api, '/v1/servers', options.pageReads),
      migrations: await pageReads(api, '/v1/migrations', options.pageReads),
      hosts: await pageReads(api, '/v1/hosts', Math.min(options.pageReads, 100)),
    }));
    reportPages({ pages }, print);

    print('alert cycles: one with no move, one with the hot hosts…');
    const temporalConnection = await Connection.connect({ address: servers.temporal.address });
    track({ stop: () => temporalConnection.close() }, 'temporal connection');
    const temporal = new Client({ connection: temporalConnection, namespace: servers.temporal.namespace });
    const ruleName = 'fleet-cpu';
    const created = await api('POST', '/v1/migration-alerts', {
      name: ruleName,
      metric: 'cpu.usage_active',
      threshold: 99,
      period: RULE_PERIOD,
    });
    if (created.status !== 201)
      throw new Error(`POST /v1/migration-alerts: ${created.status} ${JSON.stringify(created.body)}`);
    const quiet = await windowOf(() => triggerCycle(temporal, ruleName));
    const patched = await api('PATCH', `/v1/migration-alerts/${ruleName}`, { threshold: HOT_THRESHOLD });
    if (patched.status !== 200) throw new Error(`PATCH /v1/migration-alerts: ${patched.status}`);
    const hot = await windowOf(() => triggerCycle(temporal, ruleName));
    await api('DELETE', `/v1/migration-alerts/${ruleName}`);
    reportCycles({ quiet, hot }, print);
    // The plan activity logs how long each of its reads took (activities/alert-activities.ts).
    const workerLog = await readFile(path.join(logDir, 'worker-1.log'), 'utf8').catch(() => '');
    for (const line of workerLog.split('\n').filter((l) => l.includes('alert plan')))
      print(`  worker: ${stripVTControlCharacters(line).slice(0, 400)}`);
    await leaseCheck();

    const config = await api('PUT', '/v1/migration-config', {
      parallelMigrationsPerCluster: 500,
      parallelOutboundMigrationsPerNode: 4,
      parallelInboundMigrationsPerNode: 4,
    });
    if (config.status !== 200) throw new Error(`PUT /v1/migration-config: ${config.status}`);
    const movable = guests.filter((g) => !g.hog).map((g) => g.id);
    const sustained = async (workers: number) => {
      print(
        `sustained live migrations, ${workers} worker(s): ${options.inFlight} in flight, ` +
          `${options.warmupS} s warm-up, ${options.windowS} s measured…`,
      );
      type Close = Awaited<ReturnType<typeof openWindow>>;
      const window: { close?: Close; measured?: Awaited<ReturnType<Close>> } = {};
      const throttledAtOpen = new Map<string, ReturnType<CpuQuota['throttled']>>();
      const throttled: Record<string, number> = {};
      const result = await sustainMigrations({
        api,
        db: db.db,
        guestIds: movable,
        inFlight: options.inFlight,
        warmupS: options.warmupS,
        seconds: options.windowS,
        onProgress: print,
        onWindow: async (edge) => {
          if (edge === 'open') {
            for (const [label, quota] of quotas) throttledAtOpen.set(label, quota.throttled());
            window.close = await openWindow();
          } else {
            window.measured = await window.close!();
            for (const [label, quota] of quotas) {
              const [before, after] = [throttledAtOpen.get(label)!, quota.throttled()];
              throttled[label] =
                (after.throttled - before.throttled) / Math.max(1, after.periods - before.periods);
            }
          }
        },
      });
      if (window.measured === undefined) throw new Error('the measured window never closed');
      return { result, ...window.measured, throttled };
    };
    holdWorker('worker-1');
    const one = await sustained(1);
    await leaseCheck();
    await start('worker-2', 'workers/main.ts', {}, /worker polling/);
    holdWorker('worker-2');
    const two = await sustained(2);
    await leaseCheck();
    const histories = await historyCounts(temporal, one.result.workflowIds, 20);

    const figures: FleetFigures = {
      options,
      hosts: options.hosts,
      guests: guests.length,
      fleetStartMs: fleetStartedMs,
      idle,
      pages,
      quiet,
      hot,
      one,
      two,
      histories,
    };
    reportSustained(figures, print);
    const json = JSON.stringify(
      figures,
      (_k, v: unknown) => (v instanceof Map ? Object.fromEntries(v) : v),
      2,
    );
    writeFileSync(path.join(root, 'results.json'), `${json}\n`);
    if (options.json) writeFileSync(options.json, `${json}\n`);
    succeeded();
  } finally {
    await runCleanups();
  }
}
