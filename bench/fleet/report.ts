import type { HistoryCounts } from '../live-migrate/history.ts';
import type { UsageWindow } from '../lib/process-usage.ts';
import { ms, table } from '../lib/stats.ts';
import type { CycleTiming, Latencies, SustainedRun } from './measure.ts';

interface Measured<T> {
  result: T;
  usage: UsageWindow;
  writes: Map<string, number>;
  influxPoints: number;
}

/** A sustained run also says how often each worker's CPU hold was its ceiling (share of 100 ms periods). */
type SustainedMeasured = Measured<SustainedRun> & { throttled: Record<string, number> };

export interface FleetFigures {
  options: { windowS: number; inFlight: number; workerCpuPercent: number };
  hosts: number;
  guests: number;
  fleetStartMs: number;
  idle: Measured<void>;
  pages: Measured<{ servers: Latencies; migrations: Latencies; hosts: Latencies }>;
  quiet: Measured<CycleTiming>;
  hot: Measured<CycleTiming>;
  one: SustainedMeasured;
  two: SustainedMeasured;
  histories: HistoryCounts[];
}

/** Tables the agents' state reports write (the rest is what requests and workflows write). */
const REPORT_TABLES = new Set(['guest_reports', 'hosts']);
const PAGE_TARGET_MS = 200;
const CYCLE_TARGET_MS = 5_000;
const RATE_TARGET = 60;
const SCALE_TARGET = 1.7;

const mib = (bytes: number) => `${Math.round(bytes / 2 ** 20)} MiB`;
const verdict = (ok: boolean) => (ok ? 'met' : 'MISSED');
const sum = (values: Iterable<number>) => [...values].reduce((a, b) => a + b, 0);
const mean = (values: readonly number[]) => (values.length === 0 ? NaN : sum(values) / values.length);

/** "api 0.12 (210 MiB), worker-1 0.80 (400 MiB), …": CPUs busy and memory of each process over a window. */
function usageLine(usage: UsageWindow): string {
  const parts = [...usage.cpus]
    .sort((a, b) => b[1] - a[1])
    .map(([name, cpus]) => `${name} ${cpus.toFixed(2)} (${mib(usage.rssBytes.get(name) ?? 0)})`);
  return (
    `CPUs busy ${usage.machineBusyCpus.toFixed(2)} of ${usage.machineCpus}, memory used ` +
    `${mib(usage.machineUsedMemoryBytes)}: ${parts.join(', ')}`
  );
}

function writesSplit(writes: Map<string, number>) {
  let reports = 0;
  let other = 0;
  for (const [tableName, n] of writes) {
    if (REPORT_TABLES.has(tableName)) reports += n;
    else other += n;
  }
  return { reports, other };
}

function sustainedLine(label: string, run: Measured<SustainedRun>, workers: string[]) {
  const { completed, perMinute, failed } = run.result;
  const seconds = run.usage.seconds;
  const cpuMs = (names: string[]) =>
    (sum(names.map((n) => run.usage.cpus.get(n) ?? 0)) * seconds * 1000) / completed;
  const orchestration = [...workers, 'api', 'temporal', 'postgres'];
  return {
    perMinute,
    row: [
      label,
      String(completed),
      String(failed),
      perMinute.toFixed(1),
      ms(cpuMs(workers)),
      ms(cpuMs(orchestration)),
      ms(cpuMs(['fleet'])),
      run.usage.machineBusyCpus.toFixed(2),
    ],
  };
}

type Print = (line?: string) => void;

export function reportIdle(f: Pick<FleetFigures, 'idle' | 'hosts'>, print: Print): void {
  const idleS = f.idle.usage.seconds;
  const idleWrites = writesSplit(f.idle.writes);
  const pointsPerS = f.idle.influxPoints / idleS;
  print(`idle fleet (${idleS.toFixed(0)} s): ${usageLine(f.idle.usage)}`);
  print(
    `  state reports: ${(idleWrites.reports / idleS).toFixed(1)} PostgreSQL rows/s ` +
      `(guest_reports ${((f.idle.writes.get('guest_reports') ?? 0) / idleS).toFixed(1)}/s, hosts ` +
      `${((f.idle.writes.get('hosts') ?? 0) / idleS).toFixed(1)}/s); other rows ${(idleWrites.other / idleS).toFixed(1)}/s`,
  );
  print(
    `  InfluxDB: ${pointsPerS.toFixed(0)} points/s written by the fleet (${(pointsPerS / f.hosts).toFixed(2)} per host)`,
  );
  print();
}

export function reportPages(f: Pick<FleetFigures, 'pages'>, print: Print): void {
  const p = f.pages.result;
  print(`page reads (100 items): ${usageLine(f.pages.usage)}`);
  print(
    table(
      ['list', 'reads', 'p50', 'p99', 'max', `p99 < ${PAGE_TARGET_MS} ms`],
      (
        [
          ['GET /v1/servers', p.servers],
          ['GET /v1/migrations', p.migrations],
          ['GET /v1/hosts', p.hosts],
        ] as const
      ).map(([list, l]) => [
        list,
        String(l.n),
        ms(l.p50),
        ms(l.p99),
        ms(l.max),
        verdict(l.p99 < PAGE_TARGET_MS),
      ]),
    ),
  );
  print();
}

export function reportCycles(f: Pick<FleetFigures, 'quiet' | 'hot'>, print: Print): void {
  print('alert cycle over every host (InfluxDB read + plan + lock; the migrations not counted):');
  const cycleRow = (label: string, c: CycleTiming) => {
    const withoutMigrations = c.moves > 0 ? c.toLastMoveStartedMs : c.totalMs;
    return [
      label,
      c.outcome,
      String(c.moves),
      ms(c.planMs),
      ms(withoutMigrations),
      String(c.counts.workflowTasks),
      String(c.counts.events),
      verdict(withoutMigrations < CYCLE_TARGET_MS),
    ];
  };
  print(
    table(
      ['cycle', 'outcome', 'moves', 'plan', 'to last move started', 'WFTs', 'events', '< 5 s'],
      [cycleRow('no move', f.quiet.result), cycleRow('hot hosts', f.hot.result)],
    ),
  );
  for (const [label, c] of [
    ['no move', f.quiet.result],
    ['hot hosts', f.hot.result],
  ] as const) {
    print(`  ${label}, timeline: ${c.timeline.map((t) => `${t.step} ${ms(t.atMs)}`).join(', ')}`);
  }
  print(`  no move: ${usageLine(f.quiet.usage)}`);
  print(`  hot hosts (until every move ended): ${usageLine(f.hot.usage)}`);
  print();
}

export function reportSustained(f: FleetFigures, print: Print): void {
  const idleS = f.idle.usage.seconds;
  const idleWrites = writesSplit(f.idle.writes);
  const pointsPerS = f.idle.influxPoints / idleS;
  const one = sustainedLine('1 worker', f.one, ['worker-1']);
  const two = sustainedLine('2 workers', f.two, ['worker-1', 'worker-2']);
  const scale = two.perMinute / one.perMinute;
  const hold = f.options.workerCpuPercent;
  print(
    `sustained live migrations (${f.options.inFlight} in flight, ${f.options.windowS} s window` +
      (hold > 0 ? `, each worker held to ${hold} % of a CPU` : '') +
      '):',
  );
  print(
    table(
      [
        'workers',
        'completed',
        'failed',
        'per min',
        'worker CPU/mig',
        'orchestration CPU/mig',
        'fleet CPU/mig',
        'CPUs busy',
      ],
      [one.row, two.row],
    ),
  );
  print(
    `  one worker: ${one.perMinute.toFixed(1)}/min, target >= ${RATE_TARGET}: ${verdict(one.perMinute >= RATE_TARGET)}; ` +
      `two: ${scale.toFixed(2)}x, target >= ${SCALE_TARGET}x: ${verdict(scale >= SCALE_TARGET)}`,
  );
  print(`  1 worker: ${usageLine(f.one.usage)}`);
  print(`  2 workers: ${usageLine(f.two.usage)}`);
  if (hold > 0) {
    const share = (run: SustainedMeasured) =>
      Object.entries(run.throttled)
        .map(([label, s]) => `${label} ${(s * 100).toFixed(0)} %`)
        .join(', ');
    print(`  periods a worker hit its ${hold} % hold: 1 worker: ${share(f.one)}; 2 workers: ${share(f.two)}`);
  }
  for (const [label, run] of [
    ['1 worker', f.one],
    ['2 workers', f.two],
  ] as const) {
    const errors = [...run.result.requestErrors].map(([code, n]) => `${code} x${n}`).join(', ');
    if (errors) print(`  ${label}: requests refused: ${errors}`);
    for (const [reason, n] of run.result.failures) print(`  ${label}: ${n} failed: ${reason}`);
  }
  print();

  const perMigration = (run: Measured<SustainedRun>) => {
    const split = writesSplit(run.writes);
    const reportsBeyondIdle = split.reports - (idleWrites.reports / idleS) * run.usage.seconds;
    return {
      other: split.other / run.result.completed,
      reports: reportsBeyondIdle / run.result.completed,
      byTable: [...run.writes]
        .filter(([t, n]) => n > 0 && !REPORT_TABLES.has(t))
        .sort((a, b) => b[1] - a[1])
        .map(([t, n]) => `${t} ${(n / run.result.completed).toFixed(1)}`)
        .join(', '),
    };
  };
  const rows = perMigration(f.one);
  print('per migration (1-worker window):');
  print(
    `  Temporal history of a liveMigrate run (${f.histories.length} sampled): ` +
      `${mean(f.histories.map((h) => h.events)).toFixed(0)} events, ` +
      `${mean(f.histories.map((h) => h.workflowTasks)).toFixed(1)} workflow tasks, ` +
      `${mean(f.histories.map((h) => h.activities)).toFixed(1)} activities, ` +
      `${mean(f.histories.map((h) => h.localActivities)).toFixed(1)} local activities`,
  );
  print(
    `  PostgreSQL rows written: ${rows.other.toFixed(1)} by the migration (${rows.byTable}), ` +
      `${rows.reports.toFixed(1)} by the state reports it caused (beyond the idle rate)`,
  );
  print();

  // The first bottleneck: the process that used the most CPU while the one worker ran flat out.
  const [top, topCpus] = [...f.one.usage.cpus].sort((a, b) => b[1] - a[1])[0] ?? ['-', NaN];
  print(
    `first bottleneck: ${top} at ${topCpus.toFixed(2)} CPUs while one worker ran ${one.perMinute.toFixed(0)}/min ` +
      `(machine ${f.one.usage.machineBusyCpus.toFixed(2)} of ${f.one.usage.machineCpus} CPUs busy)`,
  );
  const scaleUp = 10;
  print(`at ${f.hosts * scaleUp} hosts (x${scaleUp}), from the per-host rates measured idle:`);
  print(
    `  state reports ${((idleWrites.reports / idleS) * scaleUp).toFixed(0)} rows/s and ` +
      `${((f.hosts * scaleUp) / 10).toFixed(0)} report requests/s into the API; InfluxDB ${(pointsPerS * scaleUp).toFixed(0)} ` +
      `points/s; the fleet's agents ${((f.idle.usage.cpus.get('fleet') ?? 0) * scaleUp).toFixed(2)} CPUs ` +
      `(spread over the real hosts, one each); etcd ${((f.hosts * scaleUp) / 2).toFixed(0)} keepalives/s at the 10 s TTL`,
  );
  print(
    `  page reads stay put (keyset pages read only their own rows); the alert plan grows with the hosts ` +
      `(${ms(f.hot.result.planMs * scaleUp)} if linear)`,
  );
}
