import { performance } from 'node:perf_hooks';
import {
  planAlertMoves,
  type PlannerGuest,
  type PlannerHost,
  type PlannerRule,
} from '../../domain/alert-planner.ts';
import { TICK_S, type Trace } from './trace.ts';

/**
 * The replay: hosts of HOST_CORES × CORE_MHZ and HOST_MEMORY_GIB, the trace's VMs placed on them by memory,
 * then one cycle a tick. At each tick the hosts' cpu percent is the sum of their guests' MHz; a host above
 * THRESHOLD counts 5 violation minutes; then the strategy plans from that tick's figures and its moves are
 * applied at once, so they change the hosts' sums from the next tick on.
 */

export const HOST_CORES = 32;
export const CORE_MHZ = 2600;
export const HOST_MHZ = HOST_CORES * CORE_MHZ;
export const HOST_MEMORY_GIB = 384;
export const HOST_MEMORY_MB = HOST_MEMORY_GIB * 1024;
export const THRESHOLD = 80;
export const PERIOD_S = TICK_S;
/** Period means a guest's history carries, oldest first. */
export const HISTORY = 6;
/** A guest back on a host it left this recently is a ping-pong. */
export const PING_PONG_S = 3600;
const GiB = 1024 ** 3;

export interface Move {
  vm: number;
  to: number;
}

export interface Cycle {
  /** Tick index and its epoch seconds. */
  t: number;
  now: number;
  trace: Trace;
  /** Host cpu percent at this tick, by host index. */
  hostPercent: Float64Array;
  /** Host of each VM (by VM index). */
  hostOf: Int32Array;
  /** Each host's guests in listing order: as placed, a guest moved in goes last. */
  members: number[][];
  /** Epoch seconds of each VM's last move in the replay, NaN when never moved. */
  lastMoved: Float64Array;
  /** When each VM last left each host (epoch seconds), by VM index. */
  leftAt: Map<number, number>[];
}

export interface Strategy {
  key: string;
  label: string;
  plan(cycle: Cycle): Move[];
}

export interface Result {
  strategy: Strategy;
  /** Host-ticks above THRESHOLD (× 5 = violation host-minutes). */
  violationTicks: number;
  /** Of those, host-ticks whose host was at or under THRESHOLD the tick before: no reactive plan can avoid them. */
  onsetTicks: number;
  migrations: number;
  pingPongs: number;
  /** Time inside the strategy's plan function (for ours: planAlertMoves alone, not building its input). */
  planMs: number;
  /** Cycles that moved anything. */
  activeCycles: number;
  /** Host-ticks above 100 % (more MHz asked than the host has). */
  saturatedTicks: number;
  /** Distinct guests moved at least once. */
  guestsMoved: number;
}

export const hostId = (h: number) => `h${String(h + 1).padStart(2, '0')}`;
export const guestId = (trace: Trace, vm: number) => `vm${String(trace.vms[vm]!.id).padStart(3, '0')}`;

/** Largest provisioned memory (at the first tick) first, each onto the host with the least memory used. */
export function initialPlacement(trace: Trace, hostCount: number): Int32Array {
  const order = trace.vms
    .map((vm, index) => ({ index, memory: vm.memoryMb[0]!, id: vm.id }))
    .sort((a, b) => b.memory - a.memory || a.id - b.id);
  const used = new Float64Array(hostCount);
  const hostOf = new Int32Array(trace.vms.length);
  for (const { index, memory } of order) {
    let best = 0;
    for (let h = 1; h < hostCount; h++) if (used[h]! < used[best]!) best = h;
    hostOf[index] = best;
    used[best]! += memory;
  }
  return hostOf;
}

/** The listing order the placement gives: each host's guests in the order they were placed. */
function initialMembers(trace: Trace, hostOf: Int32Array, hostCount: number): number[][] {
  const members: number[][] = Array.from({ length: hostCount }, () => []);
  const order = trace.vms
    .map((vm, index) => ({ index, memory: vm.memoryMb[0]!, id: vm.id }))
    .sort((a, b) => b.memory - a.memory || a.id - b.id);
  for (const { index } of order) members[hostOf[index]!]!.push(index);
  return members;
}

export function simulate(trace: Trace, hostCount: number, strategy: Strategy): Result {
  const hostOf = initialPlacement(trace, hostCount);
  const members = initialMembers(trace, hostOf, hostCount);
  const lastMoved = new Float64Array(trace.vms.length).fill(Number.NaN);
  /** When each VM last left each host (epoch seconds), for the ping-pong count. */
  const leftAt = trace.vms.map(() => new Map<number, number>());
  const moved = new Set<number>();
  const hostPercent = new Float64Array(hostCount);
  const wasOver = new Uint8Array(hostCount);
  const result: Result = {
    strategy,
    violationTicks: 0,
    onsetTicks: 0,
    migrations: 0,
    pingPongs: 0,
    planMs: 0,
    activeCycles: 0,
    saturatedTicks: 0,
    guestsMoved: 0,
  };
  const last = trace.ticks.length - 1;
  for (let t = 0; t <= last; t++) {
    hostPercent.fill(0);
    for (let vm = 0; vm < trace.vms.length; vm++) hostPercent[hostOf[vm]!]! += trace.vms[vm]!.cpuMhz[t]!;
    for (let h = 0; h < hostCount; h++) {
      hostPercent[h] = (hostPercent[h]! / HOST_MHZ) * 100;
      const over = hostPercent[h]! > THRESHOLD;
      if (over) result.violationTicks += 1;
      if (over && !wasOver[h]) result.onsetTicks += 1;
      wasOver[h] = over ? 1 : 0;
      if (hostPercent[h]! > 100) result.saturatedTicks += 1;
    }
    if (t === last) break; // a plan now would change nothing the replay sees
    const now = trace.ticks[t]!;
    const started = performance.now();
    const moves = strategy.plan({ t, now, trace, hostPercent, hostOf, members, lastMoved, leftAt });
    result.planMs += performance.now() - started;
    if (moves.length > 0) result.activeCycles += 1;
    for (const { vm, to } of moves) {
      const from = hostOf[vm]!;
      if (from === to) continue;
      const list = members[from]!;
      list.splice(list.indexOf(vm), 1);
      members[to]!.push(vm);
      hostOf[vm] = to;
      const left = leftAt[vm]!.get(to);
      if (left !== undefined && now - left <= PING_PONG_S) result.pingPongs += 1;
      leftAt[vm]!.set(from, now);
      lastMoved[vm] = now;
      moved.add(vm);
      result.migrations += 1;
    }
  }
  result.guestsMoved = moved.size;
  return result;
}

export const noMigration: Strategy = { key: 'none', label: 'a. no migration', plan: () => [] };

/**
 * A Cloudpods-like baseline: the first alerted host in listing order; every guest of it, in listing order,
 * to the least loaded host where its score keeps the host under the threshold and its memory fits.
 */
export const cloudpodsLike: Strategy = {
  key: 'baseline',
  label: 'b. Cloudpods-like baseline',
  plan({ t, trace, hostPercent, members }) {
    const hostCount = hostPercent.length;
    let source = -1;
    for (let h = 0; h < hostCount; h++) {
      if (hostPercent[h]! > THRESHOLD) {
        source = h;
        break;
      }
    }
    if (source < 0) return [];
    const value = Array.from(hostPercent);
    const memoryUsed = members.map((list) => list.reduce((sum, vm) => sum + trace.vms[vm]!.memoryMb[t]!, 0));
    const moves: Move[] = [];
    for (const vm of members[source]!) {
      const guest = trace.vms[vm]!;
      const score = (guest.cpuPercent[t]! * guest.cores[t]!) / HOST_CORES;
      const memory = guest.memoryMb[t]!;
      let best = -1;
      for (let h = 0; h < hostCount; h++) {
        if (h === source) continue;
        if (memoryUsed[h]! + memory > HOST_MEMORY_MB) continue;
        if (value[h]! + score >= THRESHOLD) continue;
        if (best < 0 || value[h]! < value[best]!) best = h;
      }
      if (best < 0) continue;
      moves.push({ vm, to: best });
      value[best]! += score;
      memoryUsed[best]! += memory;
    }
    return moves;
  },
};

export interface OursSettings {
  margin: number;
  cooldownPeriods: number;
  /** How steady a target is: from its own last HISTORY ticks (as the alert cycle reads it), or its guests'. */
  targetSteadiness?: 'host' | 'guests';
}

/** What planAlertMoves said over the replay, summed over its cycles. */
export interface PlannerStats {
  calls: number;
  ms: number;
  /** Host-cycles alerted, and those its plan relieved (brought under threshold × (1 − margin)). */
  alerted: number;
  relieved: number;
  /** Unplaced guests: in their cool-down (listed when their host stays unrelieved), or tried and no target passed. */
  coolingDown: number;
  noTarget: number;
  /** The refusals those name, by the rule that refused the target. */
  refusals: { threshold: number; margin: number; memory: number; leaving: number; other: number };
}

/** Ours: planAlertMoves over every host, guests with this tick's usage and their last HISTORY ticks. */
export function ours(
  settings: OursSettings,
  planner: typeof planAlertMoves = planAlertMoves,
): Strategy & { stats: PlannerStats } {
  const rule: PlannerRule = {
    metric: 'cpu.usage_active',
    threshold: THRESHOLD,
    periodS: PERIOD_S,
    margin: settings.margin,
    cooldownS: settings.cooldownPeriods * PERIOD_S,
  };
  const stats: PlannerStats = {
    calls: 0,
    ms: 0,
    alerted: 0,
    relieved: 0,
    coolingDown: 0,
    noTarget: 0,
    refusals: { threshold: 0, margin: 0, memory: 0, leaving: 0, other: 0 },
  };
  const iso = new Map<number, string>();
  const isoOf = (epochS: number) => {
    let text = iso.get(epochS);
    if (text === undefined) iso.set(epochS, (text = new Date(epochS * 1000).toISOString()));
    return text;
  };
  const byHost = (settings.targetSteadiness ?? 'host') === 'host';
  /** The hosts' percent at the last HISTORY ticks, oldest first. */
  const past: Float64Array[] = [];
  return {
    key: `ours m=${settings.margin} c=${settings.cooldownPeriods}${byHost ? '' : ' guests'}`,
    label: `c. ours (margin ${settings.margin}, cool-down ${settings.cooldownPeriods} periods)`,
    stats,
    plan({ t, now, trace, hostPercent, hostOf, lastMoved, leftAt }) {
      const hosts: PlannerHost[] = Array.from(hostPercent, (current, h) => ({
        id: hostId(h),
        name: hostId(h),
        cpus: HOST_CORES,
        memoryBytes: HOST_MEMORY_GIB * GiB,
        current,
        ...(byHost ? { history: past.map((percent) => percent[h]!) } : {}),
      }));
      past.push(Float64Array.from(hostPercent));
      if (past.length > HISTORY) past.shift();
      const guests: PlannerGuest[] = trace.vms.map((vm, index) => ({
        id: guestId(trace, index),
        name: guestId(trace, index),
        hostId: hostId(hostOf[index]!),
        vcpus: vm.cores[t]!,
        memoryMb: vm.memoryMb[t]!,
        usage: vm.cpuPercent[t]!,
        history: Array.from(vm.cpuPercent.subarray(Math.max(0, t - HISTORY), t)),
        lastMigratedAt: Number.isNaN(lastMoved[index]!) ? null : isoOf(lastMoved[index]!),
        leftHosts: [...leftAt[index]!].map(([host, at]) => ({ host: hostId(host), at: isoOf(at) })),
      }));
      const started = performance.now();
      const plan = planner({ now: isoOf(now), rule, hosts, guests });
      stats.ms += performance.now() - started;
      stats.calls += 1;
      stats.alerted += plan.alerted.length;
      stats.relieved += plan.alerted.filter((a) => a.relieved).length;
      const r = stats.refusals;
      for (const u of plan.unplaced) {
        if (u.reasons[0]?.startsWith('moved at')) {
          stats.coolingDown += 1;
          continue;
        }
        stats.noTarget += 1;
        for (const reason of u.reasons) {
          if (reason.includes(' - margin(')) r.margin += 1;
          else if (reason.includes('threshold(')) r.threshold += 1;
          else if (reason.includes('memory_used(')) r.memory += 1;
          else if (reason.includes('guests leave it')) r.leaving += 1;
          else r.other += 1;
        }
      }
      const vmOf = new Map(guests.map((g, index) => [g.id, index]));
      return plan.moves.map((m) => ({ vm: vmOf.get(m.guest)!, to: parseInt(m.to.slice(1), 10) - 1 }));
    },
  };
}

/**
 * Host-ticks no placement can avoid: a VM alone asks more than THRESHOLD % of a host's MHz, so whichever
 * host holds it is past the threshold.
 */
export function unavoidableTicks(trace: Trace): number {
  let count = 0;
  for (let t = 0; t < trace.ticks.length; t++) {
    for (const vm of trace.vms) if ((vm.cpuMhz[t]! / HOST_MHZ) * 100 > THRESHOLD) count += 1;
  }
  return count;
}

/**
 * A hindsight bound, not a strategy: every tick repacked from scratch, first-fit decreasing by MHz into
 * hosts filled up to THRESHOLD (what does not fit goes to the least loaded host), ignoring memory and the
 * cost of moving. The host-ticks past THRESHOLD it leaves show how much the fleet's capacity alone forces.
 */
export function repackedTicks(trace: Trace, hostCount: number): number {
  const limit = (THRESHOLD / 100) * HOST_MHZ;
  const bins = new Float64Array(hostCount);
  let count = 0;
  for (let t = 0; t < trace.ticks.length; t++) {
    const demand = trace.vms.map((vm) => vm.cpuMhz[t]!).sort((a, b) => b - a);
    bins.fill(0);
    for (const mhz of demand) {
      let at = bins.findIndex((used) => used + mhz <= limit);
      if (at < 0) {
        at = 0;
        for (let h = 1; h < hostCount; h++) if (bins[h]! < bins[at]!) at = h;
      }
      bins[at]! += mhz;
    }
    for (const used of bins) if (used > limit) count += 1;
  }
  return count;
}
