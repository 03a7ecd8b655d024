import os from 'node:os';
import { performance } from 'node:perf_hooks';
import { DEFAULT_ALERT_MARGIN, DEFAULT_COOLDOWN_PERIODS } from '../../domain/alert-rule.ts';
import { ms, ratio, table } from '../lib/stats.ts';
import {
  cloudpodsLike,
  CORE_MHZ,
  HISTORY,
  HOST_CORES,
  HOST_MEMORY_GIB,
  HOST_MHZ,
  initialPlacement,
  noMigration,
  ours,
  PING_PONG_S,
  repackedTicks,
  simulate,
  THRESHOLD,
  unavoidableTicks,
  type PlannerStats,
  type Result,
} from './simulate.ts';
import { loadTrace, TICK_S } from './trace.ts';

export const name = 'replay';

export const summary =
  'decision quality on 30 days of the Bitbrains Rnd trace: no migration vs a Cloudpods-like baseline vs planAlertMoves';

const DEFAULT_TRACE = '/work/shared/traces/bitbrains-rnd/2013-8';

export const usage = `npm run bench -- replay [--days N] [--hosts N] [--margin M[,M…]] [--cooldown-periods P[,P…]] [--target-steadiness host|guests] [--trace DIR]

  --days N                 days of the trace replayed, from its start; default 30 (the whole month)
  --hosts N                hosts of ${HOST_CORES} cores x ${CORE_MHZ} MHz and ${HOST_MEMORY_GIB} GiB; default 14
  --margin M,…             the rule's margin for ours; default ${DEFAULT_ALERT_MARGIN} (the planner's default)
  --cooldown-periods P,…   the rule's cool-down for ours, in ${TICK_S} s periods; default ${DEFAULT_COOLDOWN_PERIODS} (the default)
                           With several values (e.g. --margin 0.05,0.1,0.15 --cooldown-periods 3,6,12) ours runs
                           for every combination and a table compares them; the target lines use the first.
  --target-steadiness S    how ours tells a steady target: 'host', its own last ${HISTORY} ticks (default, as the alert
                           cycle reads it), or 'guests', the sum of its guests' spreads (the planner without host history)
  --trace DIR              the directory of <id>.csv.gz files; default ${DEFAULT_TRACE}`;

interface Options {
  days: number;
  hosts: number;
  margins: number[];
  cooldowns: number[];
  targetSteadiness: 'host' | 'guests';
  trace: string;
}

const TARGET_VIOLATIONS = 0.5;
const TARGET_MIGRATIONS = 0.2;

function parseOptions(args: string[]): Options {
  const options: Options = {
    days: 30,
    hosts: 14,
    margins: [DEFAULT_ALERT_MARGIN],
    cooldowns: [DEFAULT_COOLDOWN_PERIODS],
    targetSteadiness: 'host',
    trace: DEFAULT_TRACE,
  };
  for (let i = 0; i < args.length; i++) {
    const [flag, inline] = (args[i] as string).split('=', 2) as [string, string | undefined];
    const raw = inline ?? args[++i];
    if (raw === undefined) throw new Error(`${flag} needs a value`);
    const numbers = (whole: boolean) =>
      raw.split(',').map((text) => {
        const n = Number(text);
        if (text.trim() === '' || !Number.isFinite(n) || n < 0 || (whole && !Number.isInteger(n))) {
          throw new Error(`${flag}: '${text}' is not a ${whole ? 'whole ' : ''}number`);
        }
        return n;
      });
    if (flag === '--days') options.days = Math.max(1, numbers(true)[0]!);
    else if (flag === '--hosts') options.hosts = Math.max(2, numbers(true)[0]!);
    else if (flag === '--margin') options.margins = numbers(false);
    else if (flag === '--cooldown-periods') options.cooldowns = numbers(true);
    else if (flag === '--target-steadiness') {
      if (raw !== 'host' && raw !== 'guests')
        throw new Error(`${flag}: expected 'host' or 'guests', got '${raw}'`);
      options.targetSteadiness = raw;
    } else if (flag === '--trace') options.trace = raw;
    else throw new Error(`replay: unknown argument '${flag}'\n\n${usage}`);
  }
  return options;
}

const count = (n: number) => n.toLocaleString('en-US');
const okOr = (ok: boolean) => (ok ? 'ok' : 'MISSED');

function row(r: Result): string[] {
  return [
    r.strategy.label,
    count(r.violationTicks * 5),
    count(r.violationTicks),
    count(r.onsetTicks),
    count(r.saturatedTicks),
    count(r.migrations),
    count(r.guestsMoved),
    count(r.pingPongs),
    count(r.activeCycles),
    ms(r.planMs),
  ];
}

const HEADER = [
  'strategy',
  'violation host-min',
  'host-ticks > 80',
  'of which onsets',
  '> 100',
  'migrations',
  'guests moved',
  'ping-pongs',
  'cycles moving',
  'plan time',
];

interface Verdict {
  violations: number;
  migrations: number;
  ok: { violations: boolean; migrations: boolean; pingPongs: boolean };
}

function verdict(ours: Result, baseline: Result): Verdict {
  const violations = ours.violationTicks / baseline.violationTicks;
  const migrations = ours.migrations / baseline.migrations;
  return {
    violations,
    migrations,
    ok: {
      violations: ours.violationTicks <= TARGET_VIOLATIONS * baseline.violationTicks,
      migrations: ours.migrations <= TARGET_MIGRATIONS * baseline.migrations,
      pingPongs: ours.pingPongs === 0,
    },
  };
}

export async function run(args: string[]): Promise<void> {
  const options = parseOptions(args);
  const print = (line = '') => console.log(line);
  const cpus = os.cpus();
  print(
    `machine: ${cpus.length} x ${cpus[0]?.model ?? 'unknown CPU'}, Node ${process.version}, ` +
      `1-min load average ${(os.loadavg()[0] ?? 0).toFixed(1)} (only the plan times depend on it)`,
  );
  let started = performance.now();
  const trace = loadTrace(options.trace, options.days);
  const ticks = trace.ticks.length;
  print(
    `trace: ${trace.vms.length} VMs of ${options.trace}, ${count(ticks)} ticks of ${TICK_S} s ` +
      `(${new Date(trace.ticks[0]! * 1000).toISOString()} – ${new Date(trace.ticks.at(-1)! * 1000).toISOString()}, ` +
      `${((ticks * TICK_S) / 86_400).toFixed(2)} days); ${count(trace.rows)} rows, ${count(trace.clipped)} CPU % clipped ` +
      `to [0, 100], ${count(trace.filled)} VM-ticks filled forward; read in ${ms(performance.now() - started)}`,
  );

  const hostOf = initialPlacement(trace, options.hosts);
  const memory = new Float64Array(options.hosts);
  const guests = new Float64Array(options.hosts);
  for (let vm = 0; vm < trace.vms.length; vm++) {
    memory[hostOf[vm]!]! += trace.vms[vm]!.memoryMb[0]! / 1024;
    guests[hostOf[vm]!]! += 1;
  }
  const meanLoad =
    (trace.vms.reduce((sum, vm) => sum + vm.cpuMhz.reduce((a, b) => a + b, 0), 0) /
      ticks /
      (options.hosts * HOST_MHZ)) *
    100;
  print(
    `hosts: ${options.hosts} x ${HOST_CORES} cores x ${CORE_MHZ} MHz (${count(HOST_MHZ)} MHz), ${HOST_MEMORY_GIB} GiB; ` +
      `placed by memory: ${Math.min(...guests)}–${Math.max(...guests)} guests, ` +
      `${Math.min(...memory).toFixed(0)}–${Math.max(...memory).toFixed(0)} GiB provisioned per host; ` +
      `fleet cpu ${meanLoad.toFixed(1)} % on average`,
  );
  const floor = unavoidableTicks(trace);
  print(
    `rule: cpu.usage_active > ${THRESHOLD} %, period ${TICK_S} s, a cycle every tick; ours sees each guest's ` +
      `tick % and its ${HISTORY} previous ticks; ping-pong = back on a host it left at most ${PING_PONG_S / 60} min before`,
  );
  const repacked = repackedTicks(trace, options.hosts);
  print(
    `context: ${count(floor)} host-ticks in which one VM alone asks more than ${THRESHOLD} % of a host; ` +
      `repacking every tick in hindsight (first-fit decreasing, no memory, moves free) leaves ${count(repacked)} ` +
      `host-ticks (${count(repacked * 5)} host-min) over ${THRESHOLD} %`,
  );
  print();

  const results: Result[] = [];
  for (const strategy of [noMigration, cloudpodsLike]) {
    started = performance.now();
    results.push(simulate(trace, options.hosts, strategy));
    print(`  ${strategy.label}: replayed in ${ms(performance.now() - started)}`);
  }
  const ourRuns: { margin: number; cooldown: number; result: Result; stats: PlannerStats }[] = [];
  for (const margin of options.margins) {
    for (const cooldown of options.cooldowns) {
      const strategy = ours({
        margin,
        cooldownPeriods: cooldown,
        targetSteadiness: options.targetSteadiness,
      });
      started = performance.now();
      const result = simulate(trace, options.hosts, strategy);
      print(`  ${strategy.label}: replayed in ${ms(performance.now() - started)}`);
      ourRuns.push({ margin, cooldown, result, stats: strategy.stats });
    }
  }
  const [none, baseline] = results as [Result, Result];
  const first = ourRuns[0]!;
  print();
  print(table(HEADER, [none, baseline, first.result].map(row)));
  const st = first.stats;
  print(
    `(onsets: host-ticks over ${THRESHOLD} % whose host was not the tick before, which no plan made after the fact ` +
      `avoids; plan time: the strategy's whole cycle, input included)`,
  );
  const rf = st.refusals;
  print(
    `ours, planAlertMoves alone: ${ms(st.ms)} over ${count(st.calls)} calls (${(st.ms / st.calls).toFixed(3)} ms a call); ` +
      `${count(st.alerted)} alerted host-cycles, ${count(st.relieved)} relieved by the plan ` +
      `(${((100 * st.relieved) / Math.max(1, st.alerted)).toFixed(1)} %)`,
  );
  print(
    `  unplaced: ${count(st.noTarget)} guests tried with no target passing (refusals: ${count(rf.threshold)} target + ` +
      `score >= threshold, ${count(rf.margin)} >= threshold - margin, ${count(rf.memory)} memory, ${count(rf.leaving)} ` +
      `guests leave it, ${count(rf.other)} other), ${count(st.coolingDown)} in their cool-down on unrelieved hosts`,
  );
  print();
  const v = verdict(first.result, baseline);
  print(
    `ours / baseline: violations ${ratio(v.violations)}, migrations ${ratio(v.migrations)}, ping-pongs ` +
      `${count(first.result.pingPongs)} vs ${count(baseline.pingPongs)}; ours / no migration: violations ` +
      `${ratio(first.result.violationTicks / none.violationTicks)}`,
  );
  print(`target: violations ≤ ${TARGET_VIOLATIONS} × baseline: ${okOr(v.ok.violations)}`);
  print(`target: migrations ≤ ${TARGET_MIGRATIONS} × baseline: ${okOr(v.ok.migrations)}`);
  print(`target: ping-pongs = 0: ${okOr(v.ok.pingPongs)}`);

  if (ourRuns.length > 1) {
    print();
    print(
      `ours by margin and cool-down (ratios to the baseline; targets ≤ ${TARGET_VIOLATIONS}, ≤ ${TARGET_MIGRATIONS}, 0):`,
    );
    print(
      table(
        [
          'margin',
          'cool-down',
          'violation host-min',
          'violations',
          'migrations',
          'migr.',
          'ping-pongs',
          'planner',
          'all targets',
        ],
        ourRuns.map(({ margin, cooldown, result, stats }) => {
          const w = verdict(result, baseline);
          return [
            String(margin),
            `${cooldown} (${(cooldown * TICK_S) / 60} min)`,
            count(result.violationTicks * 5),
            `${ratio(w.violations)} ${okOr(w.ok.violations)}`,
            count(result.migrations),
            `${ratio(w.migrations)} ${okOr(w.ok.migrations)}`,
            `${count(result.pingPongs)} ${okOr(w.ok.pingPongs)}`,
            ms(stats.ms),
            w.ok.violations && w.ok.migrations && w.ok.pingPongs ? 'ok' : 'MISSED',
          ];
        }),
      ),
    );
  }
}
