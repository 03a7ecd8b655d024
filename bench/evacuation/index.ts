import { writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { EvacuationOutcome } from '../../domain/evacuation.ts';
import { DEFAULT_TIMINGS } from '../../domain/live-migration.ts';
import { mapLimited } from '../../domain/map-limited.ts';
import type { SlotLimits } from '../../domain/slots.ts';
import { waitFor } from '../../test/helpers/wait.ts';
import type { HostEvent, MigrationRow } from '../lib/api-views.ts';
import { parseFlags } from '../lib/args.ts';
import { cpuBetween, cpuSnapshot } from '../lib/cpu.ts';
import { runCleanups } from '../lib/lifecycle.ts';
import { machineLine, revisionLine } from '../lib/provenance.ts';
import { ms } from '../lib/stats.ts';
import { benchWorkdir } from '../lib/workdir.ts';
import { startRunStack, type Orchestrator } from '../live-migrate/stack.ts';
import { moveOf, type Move } from './analysis.ts';
import { runsOf } from './histories.ts';
import { report, type Measured } from './report.ts';

export const name = 'evacuation';

export const summary =
  'maintenance of 10 of 50 sim hosts at once (200 live migrations under limits 5/2/2): makespan vs its lower bound';

export const usage = `npm run bench -- evacuation [--hosts N] [--guests N] [--evacuate N] [--memory-mb MB]
                                [--dirty-mibs N] [--link-mbps N] [--keep] [--json FILE]

  --hosts N       sim hosts, all agents in this process; default 50
  --guests N      running guests per host; default 20
  --evacuate N    hosts put in maintenance at once (the first N); default 10 (so 200 live migrations)
  --memory-mb MB  guest memory; default 4096 (a 3.4 s first pass at the link speed)
  --dirty-mibs N  guest dirty rate, MiB/s, over the sim's 32 MiB working set; default 16
  --link-mbps N   the sim hosts' migration link, Mbit/s (no bandwidth cap is set); default 10000
  --keep          keep the temporary directory (server and agent logs) after the run
  --json FILE     also write the migration rows' figures and the summary to FILE
  Quick try: npm run bench -- evacuation --hosts 8 --guests 4 --evacuate 2`;

/** KubeVirt's defaults, which the issue asks for. */
const LIMITS: SlotLimits = { perCluster: 5, outboundPerNode: 2, inboundPerNode: 2 };
const CREATE_CONCURRENCY = 16;
/** How long the idle orchestrator is watched before the evacuation, for its background CPU. */
const IDLE_MS = 10_000;
const PROGRESS_MS = 30_000;

interface Options {
  hosts: number;
  guests: number;
  evacuate: number;
  memoryMb: number;
  dirtyMibs: number;
  linkMbps: number;
  keep: boolean;
  json: string | null;
}

function parseOptions(args: string[]): Options {
  const options = parseFlags(
    { name, usage },
    args,
    {
      hosts: 50,
      guests: 20,
      evacuate: 10,
      memoryMb: 4096,
      dirtyMibs: 16,
      linkMbps: 10_000,
      keep: false,
      json: null,
    } as Options,
    {
      '--hosts': { key: 'hosts', min: 2 },
      '--guests': { key: 'guests', min: 1 },
      '--evacuate': { key: 'evacuate', min: 1 },
      '--memory-mb': { key: 'memoryMb', min: 64 },
      '--dirty-mibs': { key: 'dirtyMibs', min: 0 },
      '--link-mbps': { key: 'linkMbps', min: 1 },
      '--keep': { key: 'keep', switch: true },
      '--json': { key: 'json', text: true },
    },
  );
  if (options.evacuate >= options.hosts)
    throw new Error('--evacuate must leave at least one host to evacuate to');
  return options;
}

const hostName = (i: number) => `sim-${String(i + 1).padStart(2, '0')}`;

/** Every guest created through the API (createGuest workflows on the sim agents) and running. */
async function createGuests(stack: Orchestrator, hosts: string[], options: Options): Promise<number> {
  const specs = hosts.flatMap((host, h) =>
    Array.from({ length: options.guests }, (_, g) => {
      const n = h * options.guests + g;
      return {
        name: `${host}-g${String(g + 1).padStart(2, '0')}`,
        host,
        vcpus: 2,
        memoryMb: options.memoryMb,
        dirtyRateMibs: options.dirtyMibs,
        networks: [
          {
            name: 'default',
            mac: `52:54:00:e0:${(n >> 8).toString(16).padStart(2, '0')}:${(n & 255).toString(16).padStart(2, '0')}`,
          },
        ],
      };
    }),
  );
  await mapLimited(specs, CREATE_CONCURRENCY, async (spec) => {
    const res = await stack.api('POST', '/v1/servers', spec);
    if (res.status !== 202)
      throw new Error(`POST /v1/servers ${spec.name}: ${res.status} ${JSON.stringify(res.body)}`);
  });
  await waitFor(
    `${specs.length} guests running`,
    async () => {
      const { items: servers } = (
        await stack.api<{ items: { status: string }[] }>('GET', '/v1/servers?status=running')
      ).body;
      if (servers.length > specs.length) throw new Error(`${servers.length} running, more than created`);
      return servers.length === specs.length;
    },
    { timeoutMs: 15 * 60_000, intervalMs: 2_000 },
  );
  return specs.length;
}

/** The completed count now, for a progress line (the API reads the rows; a light query). */
async function completedCount(stack: Orchestrator): Promise<number> {
  const { items: migrations } = (
    await stack.api<{ items: unknown[] }>('GET', '/v1/migrations?status=completed&limit=1000')
  ).body;
  return migrations.length;
}

export async function run(args: string[]): Promise<void> {
  const options = parseOptions(args);
  const print = (line = '') => console.log(line);
  const { root, succeeded, track } = benchWorkdir({
    prefix: 'vmmig-bench-evac-',
    keep: options.keep,
    print,
  });
  const hosts = Array.from({ length: options.hosts }, (_, i) => hostName(i));
  const evacuated = hosts.slice(0, options.evacuate);
  const expected = options.evacuate * options.guests;

  print(`evacuation: ${summary}`);
  print(`machine: ${machineLine(null)}`);
  print(`code: ${revisionLine()}`);
  print(
    `cluster: ${options.hosts} sim hosts (48 CPUs, 384 GiB, ${options.linkMbps} Mbit/s migration link) in this process; ` +
      `${options.guests} running guests each (2 vCPU, ${options.memoryMb} MiB, dirtying ${options.dirtyMibs} MiB/s)`,
  );
  print(
    `evacuation: ${evacuated.length} hosts (${evacuated[0]}…${evacuated.at(-1)}) into maintenance at once: ` +
      `${expected} live migrations; limits ${LIMITS.perCluster}/${LIMITS.outboundPerNode}/${LIMITS.inboundPerNode} ` +
      `(cluster/outbound/inbound); migration timings DEFAULT_TIMINGS (poll ${DEFAULT_TIMINGS.pollIntervalMs} ms)`,
  );
  print(`temp dir: ${root}`);
  print();

  try {
    const { stack } = await startRunStack({ root, track }, print, {
      hosts,
      driver: 'sim',
      sim: { linkBytesPerSec: (options.linkMbps * 1e6) / 8 },
    });
    const config = await stack.api('PUT', '/v1/migration-config', {
      parallelMigrationsPerCluster: LIMITS.perCluster,
      parallelOutboundMigrationsPerNode: LIMITS.outboundPerNode,
      parallelInboundMigrationsPerNode: LIMITS.inboundPerNode,
    });
    if (config.status !== 200) throw new Error(`PUT /v1/migration-config: ${config.status}`);
    let t = Date.now();
    const created = await createGuests(stack, hosts, options);
    print(`guests: ${created} created through the API and running in ${ms(Date.now() - t)}`);

    // The idle orchestrator's own CPU (agents' leases and registrations, worker polls), to set the run's against.
    await sleep(2_000);
    const idleFrom = process.cpuUsage();
    await sleep(IDLE_MS);
    const idle = process.cpuUsage(idleFrom);
    const idleCpuPerSecond = (idle.user + idle.system) / 1000 / (IDLE_MS / 1000);
    print(
      `idle: this process used ${idleCpuPerSecond.toFixed(1)} ms CPU per second over ${IDLE_MS / 1000} s`,
    );
    print();

    // --- the measured part: every maintenance request at once, until every evacuation has completed -------------
    const loadAtStart = os.loadavg()[0] ?? Number.NaN;
    const tree0 = cpuSnapshot();
    const cpu0 = process.cpuUsage();
    const startedAt = Date.now();
    const entered = await Promise.all(
      evacuated.map(async (host) => {
        const res = await stack.api<{ workflowId: string; runId: string }>(
          'POST',
          `/v1/hosts/${host}/maintenance`,
        );
        if (res.status !== 202)
          throw new Error(`POST /v1/hosts/${host}/maintenance: ${res.status} ${JSON.stringify(res.body)}`);
        return { host, ...res.body };
      }),
    );
    print(`maintenance requested on ${evacuated.length} hosts in ${ms(Date.now() - startedAt)}`);
    const progress = setInterval(() => {
      void completedCount(stack!)
        .then((n) =>
          print(
            `  +${((Date.now() - startedAt) / 1000).toFixed(0)} s: ${n}/${expected} migrations completed`,
          ),
        )
        .catch(() => undefined);
    }, PROGRESS_MS);
    let outcomes: { host: string; outcomes: EvacuationOutcome[] }[];
    try {
      outcomes = await Promise.all(
        entered.map(async ({ host, workflowId, runId }) => ({
          host,
          outcomes: await stack.temporal.workflow.getHandle(workflowId, runId).result(),
        })),
      );
    } finally {
      clearInterval(progress);
    }
    const doneAt = Date.now();
    const cpu = process.cpuUsage(cpu0);
    const tree1 = cpuSnapshot();
    const cores = cpuBetween(tree0, tree1);
    print(`every evacuation completed ${ms(doneAt - startedAt)} after the requests (as this process saw it)`);
    print(
      `machine meanwhile: ${cores.own.toFixed(2)} of ${os.cpus().length} CPUs busy with this benchmark's processes, ` +
        `${cores.other.toFixed(2)} with anything else; 1-min load average ${loadAtStart.toFixed(1)} at the start, ` +
        `${(os.loadavg()[0] ?? Number.NaN).toFixed(1)} at the end`,
    );
    print();

    // --- what the records say ----------------------------------------------------------------------------------
    const perHost = await Promise.all(
      evacuated.map(async (host) => {
        const { items: events } = (
          await stack.api<{ items: HostEvent[] }>('GET', `/v1/hosts/${host}/events?limit=1000`)
        ).body;
        const { items: migrations } = (
          await stack.api<{ items: MigrationRow[] }>('GET', `/v1/migrations?host=${host}&limit=1000`)
        ).body;
        const completed = events.find((e) => e.action === 'evacuation_completed');
        return {
          host,
          completedAt: completed ? Date.parse(completed.at) : Number.NaN,
          rows: migrations.filter((m) => m.source.name === host && m.trigger === 'maintenance'),
        };
      }),
    );
    const rows = perHost.flatMap((h) => h.rows);
    const moves: Move[] = rows.map(moveOf);
    print('reading the Temporal histories of every run…');
    t = Date.now();
    const [liveRuns, evacuationRuns, slotsRuns] = [
      await runsOf(stack.temporal, 'liveMigrate'),
      await runsOf(stack.temporal, 'evacuateHost'),
      await runsOf(stack.temporal, 'migrationSlots'),
    ];
    print(
      `  ${liveRuns.length + evacuationRuns.length + slotsRuns.length} runs read in ${ms(Date.now() - t)}`,
    );
    print();

    const measured: Measured = {
      limits: LIMITS,
      hosts,
      evacuated,
      expected,
      startedAt,
      doneAt,
      perHost: perHost.map(({ host, completedAt, rows: hostRows }) => ({
        host,
        completedAt,
        moves: hostRows.length,
      })),
      outcomes,
      moves,
      cpu: {
        processMs: (cpu.user + cpu.system) / 1000,
        // /proc ticks are USER_HZ (100 per second on Linux): 10 ms each.
        treeMs: (tree1.ownTicks - tree0.ownTicks) * 10,
        idleProcessMsPerSecond: idleCpuPerSecond,
      },
      liveRuns,
      evacuationRuns,
      slotsRuns,
    };
    const summaryFigures = report(measured, print);
    const results = { options, summary: summaryFigures, moves };
    writeFileSync(path.join(root, 'results.json'), `${JSON.stringify(results, null, 2)}\n`);
    if (options.json) writeFileSync(options.json, `${JSON.stringify(results, null, 2)}\n`);
    print();
    succeeded();
  } finally {
    await runCleanups();
  }
}
