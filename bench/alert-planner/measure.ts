import os from 'node:os';
import { performance } from 'node:perf_hooks';
import {
  planAlertMoves,
  type AlertPlan,
  type AlertPlanInput,
  type PlannerRule,
} from '../../domain/alert-planner.ts';
import { DEFAULT_ALERT_MARGIN, DEFAULT_COOLDOWN_PERIODS } from '../../domain/alert-rule.ts';
import { ms, summarize, table } from '../lib/stats.ts';
import { CPU_THRESHOLD, GiB, makeFleet, memoryThreshold, NOW, withCurrent, type Fleet } from './fleet.ts';

export interface Options {
  hosts: number;
  guests: number;
  rounds: number;
  seed: number;
}

/** The target of the issue: a whole fleet planned within a second. */
export const TARGET_MS = 1000;

const MB = 1024 * 1024;
const mb = (bytes: number) => `${(bytes / MB).toFixed(1)} MiB`;
const signedMb = (bytes: number) => `${bytes >= 0 ? '+' : ''}${mb(bytes)}`;
const count = (n: number) => n.toLocaleString('en-US');
const pct = (part: number, whole: number) => (whole === 0 ? '-' : `${((100 * part) / whole).toFixed(1)} %`);

const gc = (): void => {
  const collect = (globalThis as { gc?: () => void }).gc;
  if (collect) {
    collect();
    collect();
  }
};
const heapUsed = () => process.memoryUsage().heapUsed;

/** FNV-1a over the moves: the same plan gives the same fingerprint on any machine. */
function fingerprint(plan: AlertPlan): string {
  let hash = 0x811c9dc5;
  for (const m of plan.moves) {
    const text = `${m.guest}>${m.to};`;
    for (let i = 0; i < text.length; i++) hash = Math.imul(hash ^ text.charCodeAt(i), 0x01000193);
  }
  for (const u of plan.unplaced) {
    for (let i = 0; i < u.guest.length; i++) hash = Math.imul(hash ^ u.guest.charCodeAt(i), 0x01000193);
  }
  return (hash >>> 0).toString(16).padStart(8, '0');
}

interface RuleResult {
  label: string;
  rule: PlannerRule;
  times: number[];
  coldMs: number;
  /**
   * Heap grown during one call, with no forced collection in it: what the plan allocates (scavenges during
   * the call hide part of it).
   */
  allocated: number[];
  /** Heap still held after a collection, while the plan is alive: the plan's own size. */
  retained: number[];
  plan: AlertPlan;
  fingerprints: Set<string>;
  firing: number;
}

function timeRule(
  label: string,
  input: AlertPlanInput,
  rounds: number,
  print: (l?: string) => void,
): RuleResult {
  const times: number[] = [];
  const allocated: number[] = [];
  const retained: number[] = [];
  const fingerprints = new Set<string>();
  gc();
  let started = performance.now();
  let plan = planAlertMoves(input);
  const coldMs = performance.now() - started;
  fingerprints.add(fingerprint(plan));
  print(`  ${label}: first (cold) call ${ms(coldMs)}`);
  for (let round = 1; round <= rounds; round++) {
    plan = null as unknown as AlertPlan;
    gc();
    const before = heapUsed();
    started = performance.now();
    plan = planAlertMoves(input);
    const elapsed = performance.now() - started;
    const after = heapUsed();
    gc();
    times.push(elapsed);
    allocated.push(after - before);
    retained.push(heapUsed() - before);
    fingerprints.add(fingerprint(plan));
    print(`  ${label}: round ${round}/${rounds} ${ms(elapsed)}`);
  }
  const firing = input.hosts.filter(
    (h) =>
      h.current !== null &&
      (input.rule.metric === 'cpu.usage_active'
        ? h.current > input.rule.threshold
        : h.current < input.rule.threshold),
  ).length;
  return { label, rule: input.rule, times, coldMs, allocated, retained, plan, fingerprints, firing };
}

function describeFleet(fleet: Fleet, print: (l?: string) => void) {
  const byCpus = new Map<number, number>();
  for (const h of fleet.hosts) byCpus.set(h.cpus, (byCpus.get(h.cpus) ?? 0) + 1);
  const memories = summarize(fleet.hosts.map((h) => h.memoryBytes / GiB));
  const vcpus = fleet.guests.reduce((s, g) => s + g.vcpus, 0);
  const cpus = fleet.hosts.reduce((s, h) => s + h.cpus, 0);
  const usage = summarize(fleet.guests.map((g) => g.usage ?? 0));
  const load = summarize(fleet.cpuPercent);
  print(
    `fleet: ${count(fleet.hosts.length)} hosts (cpus ${[...byCpus]
      .sort((a, b) => a[0] - b[0])
      .map(([c, n]) => `${c}: ${count(n)}`)
      .join(', ')}; memory ${memories.min}–${memories.max} GiB, median ${memories.median}), ` +
      `${count(fleet.guests.length)} guests (${count(fleet.dropped)} did not fit), ${count(vcpus)} vCPUs on ${count(cpus)} cpus`,
  );
  print(
    `  guest usage %: median ${usage.median.toFixed(1)}, p75 ${usage.p75.toFixed(1)}, max ${usage.max.toFixed(1)}; ` +
      `host cpu %: median ${load.median.toFixed(1)}, p75 ${load.p75.toFixed(1)}; ` +
      `> ${CPU_THRESHOLD} %: ${count(fleet.cpuPercent.filter((v) => v > CPU_THRESHOLD).length)} hosts ` +
      `(${pct(fleet.cpuPercent.filter((v) => v > CPU_THRESHOLD).length, fleet.hosts.length)}), at the 100 % cap: ` +
      `${count(fleet.cpuPercent.filter((v) => v >= 100).length)}`,
  );
  print(
    `  settling hosts ${count(fleet.hosts.filter((h) => h.settling).length)}, hosts taking no guests ` +
      `${count(fleet.hosts.filter((h) => h.acceptsGuests === false).length)}, guests migrating ` +
      `${count(fleet.guests.filter((g) => g.migrating).length)}, guests with a last move ` +
      `${count(fleet.guests.filter((g) => g.lastMigratedAt !== null).length)}`,
  );
}

export function measure(options: Options, print: (line?: string) => void = (l = '') => console.log(l)): void {
  const exposed = typeof (globalThis as { gc?: unknown }).gc === 'function';
  const cpus = os.cpus();
  print(
    `machine: ${cpus.length} x ${cpus[0]?.model ?? 'unknown CPU'}, Node ${process.version}, ` +
      `1-min load average ${(os.loadavg()[0] ?? 0).toFixed(1)}; global.gc ${exposed ? 'exposed' : 'NOT exposed (heap figures include garbage)'}`,
  );
  gc();
  const heapStart = heapUsed();
  let started = performance.now();
  const fleet = makeFleet(options.seed, options.hosts, options.guests);
  const fleetMs = performance.now() - started;
  gc();
  const fleetHeap = heapUsed() - heapStart;
  describeFleet(fleet, print);

  const cpuRule: PlannerRule = { metric: 'cpu.usage_active', threshold: CPU_THRESHOLD, periodS: 300 };
  const memThreshold = memoryThreshold(fleet);
  const memRule: PlannerRule = { metric: 'mem.available', threshold: memThreshold, periodS: 300 };
  const cpuInput: AlertPlanInput = {
    now: NOW,
    rule: cpuRule,
    hosts: withCurrent(fleet, fleet.cpuPercent),
    guests: fleet.guests,
  };
  const memInput: AlertPlanInput = {
    now: NOW,
    rule: memRule,
    hosts: withCurrent(fleet, fleet.freeBytes),
    guests: fleet.guests,
  };
  started = performance.now();
  const jsonBytes = Buffer.byteLength(JSON.stringify(cpuInput));
  const jsonMs = performance.now() - started;
  const historyValues = fleet.guests.reduce((s, g) => s + g.history.length, 0);
  print(
    `input: ${count(fleet.hosts.length)} hosts, ${count(fleet.guests.length)} guests, ${count(historyValues)} history values; ` +
      `${mb(jsonBytes)} as JSON (stringify ${ms(jsonMs)}); ${mb(fleetHeap)} of heap (generated in ${ms(fleetMs)})`,
  );
  print(
    `rules: cpu.usage_active > ${CPU_THRESHOLD} %, period 300 s; mem.available < ${memThreshold / GiB} GiB ` +
      `(the ${count(fleet.freeBytes.filter((v) => v < memThreshold).length)} hosts with the least free memory); ` +
      `margin ${DEFAULT_ALERT_MARGIN}, cool-down ${DEFAULT_COOLDOWN_PERIODS} periods (the defaults)`,
  );
  print();
  print(`timing ${options.rounds} round(s) per rule after one cold call…`);
  const results = [
    timeRule('cpu', cpuInput, options.rounds, print),
    timeRule('memory', memInput, options.rounds, print),
  ];
  print();

  print(
    table(
      ['rule', 'median', 'min', 'max', 'cold', 'heap growth in call (median)', 'plan retained (median)'],
      results.map((r) => {
        const t = summarize(r.times);
        return [
          r.label,
          ms(t.median),
          ms(t.min),
          ms(t.max),
          ms(r.coldMs),
          signedMb(summarize(r.allocated).median),
          signedMb(summarize(r.retained).median),
        ];
      }),
    ),
  );
  print();
  print('plans (the same on every machine for the same --hosts, --guests and --seed):');
  print(
    table(
      [
        'rule',
        'firing',
        'alerted',
        'settling',
        'relieved',
        'moves',
        'unplaced',
        'targets used',
        'fingerprint',
      ],
      results.map((r) => {
        const p = r.plan;
        const relieved = p.alerted.filter((a) => a.relieved).length;
        return [
          r.label,
          count(r.firing),
          count(p.alerted.length),
          count(p.settling.length),
          `${count(relieved)} (${pct(relieved, p.alerted.length)})`,
          count(p.moves.length),
          count(p.unplaced.length),
          count(new Set(p.moves.map((m) => m.to)).size),
          r.fingerprints.size === 1 ? [...r.fingerprints][0]! : `VARIES (${r.fingerprints.size})`,
        ];
      }),
    ),
  );
  for (const r of results) {
    const reasons = new Map<string, number>();
    for (const u of r.plan.unplaced) {
      const first = u.reasons[0] ?? '';
      const kind = first.startsWith('moved at')
        ? 'in its cool-down'
        : first === 'already migrating'
          ? 'already migrating'
          : first === 'no cpu usage data'
            ? 'no usage data'
            : 'no target passes';
      reasons.set(kind, (reasons.get(kind) ?? 0) + 1);
    }
    const notRelieved = r.plan.alerted.filter((a) => !a.relieved);
    const at100 = notRelieved.filter((a) => a.value >= 100).length;
    print(
      `  ${r.label}: unplaced by reason: ${
        [...reasons]
          .sort()
          .map(([k, n]) => `${k} ${count(n)}`)
          .join(', ') || 'none'
      }; not relieved ${count(notRelieved.length)}` +
        (r.label === 'cpu' ? ` (of which ${count(at100)} at the 100 % cap)` : ''),
    );
  }
  print();
  print(
    `memory: heap ${mb(heapStart)} before the fleet, ${mb(heapUsed())} now; peak RSS ` +
      `${mb(process.resourceUsage().maxRSS * 1024)} (the whole process: fleet, JSON copy, plans)`,
  );
  const cpu = summarize(results[0]!.times);
  const mem = summarize(results[1]!.times);
  print(
    `target: plan ${count(options.hosts)} hosts / ${count(options.guests)} guests in < 1 s: ` +
      `${cpu.median < TARGET_MS ? 'ok' : 'MISSED'} (median ${Math.round(cpu.median)} ms)` +
      ` [memory rule: ${mem.median < TARGET_MS ? 'ok' : 'MISSED'}, median ${Math.round(mem.median)} ms]`,
  );
}
