import fs from 'node:fs';
import os from 'node:os';
import { listProcesses } from '../../scripts/services/proc-table.ts';

/** CPU ticks (USER_HZ, 100 a second) and resident memory of a process and every live descendant. */
export interface TreeUsage {
  ticks: number;
  rssBytes: number;
}

const PAGE_BYTES = 4096;

function ownUsage(pid: number): TreeUsage {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // fields[0] is field 3 of proc(5): utime..cstime are fields 14..17, rss (pages) field 24.
    const ticks = [11, 12, 13, 14].reduce((sum, i) => sum + Number(fields[i] ?? 0), 0);
    return { ticks, rssBytes: Number(fields[21] ?? 0) * PAGE_BYTES };
  } catch {
    return { ticks: 0, rssBytes: 0 };
  }
}

/** Usage of each named process tree at one moment (children reaped meanwhile count through cutime/cstime). */
export function sampleTrees(roots: ReadonlyMap<string, number>): Map<string, TreeUsage> {
  const children = new Map<number, number[]>();
  for (const p of listProcesses()) children.set(p.ppid, [...(children.get(p.ppid) ?? []), p.pid]);
  const result = new Map<string, TreeUsage>();
  for (const [name, root] of roots) {
    const total = { ticks: 0, rssBytes: 0 };
    const stack = [root];
    const seen = new Set<number>();
    while (stack.length > 0) {
      const pid = stack.pop()!;
      if (seen.has(pid)) continue;
      seen.add(pid);
      const own = ownUsage(pid);
      total.ticks += own.ticks;
      total.rssBytes += own.rssBytes;
      stack.push(...(children.get(pid) ?? []));
    }
    result.set(name, total);
  }
  return result;
}

/** The machine's busy and total ticks (all CPUs) and used memory, at one moment. */
export interface MachineSample {
  totalTicks: number;
  busyTicks: number;
  usedMemoryBytes: number;
  at: number;
}

export function sampleMachine(): MachineSample {
  const line = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '';
  const values = line.trim().split(/\s+/).slice(1, 9).map(Number);
  const totalTicks = values.reduce((a, b) => a + b, 0);
  const idle = (values[3] ?? 0) + (values[4] ?? 0);
  return {
    totalTicks,
    busyTicks: totalTicks - idle,
    usedMemoryBytes: os.totalmem() - os.freemem(),
    at: Date.now(),
  };
}

export interface UsageWindow {
  seconds: number;
  /** CPUs busy on average over the window, per named tree. */
  cpus: Map<string, number>;
  /** Resident memory at the end of the window, per named tree. */
  rssBytes: Map<string, number>;
  machineBusyCpus: number;
  machineCpus: number;
  machineUsedMemoryBytes: number;
}

/** Watches named process trees: start() then end() gives each one's CPU over the window and its memory. */
export class UsageMeter {
  private from: { trees: Map<string, TreeUsage>; machine: MachineSample } | null = null;

  constructor(private readonly roots: () => ReadonlyMap<string, number>) {}

  start(): void {
    this.from = { trees: sampleTrees(this.roots()), machine: sampleMachine() };
  }

  end(): UsageWindow {
    if (this.from === null) throw new Error('UsageMeter.end() before start()');
    const trees = sampleTrees(this.roots());
    const machine = sampleMachine();
    const seconds = (machine.at - this.from.machine.at) / 1000;
    const cpuCount = os.cpus().length;
    const elapsedTicks = (machine.totalTicks - this.from.machine.totalTicks) / cpuCount;
    const cpus = new Map<string, number>();
    const rssBytes = new Map<string, number>();
    for (const [name, now] of trees) {
      const before = this.from.trees.get(name)?.ticks ?? now.ticks;
      cpus.set(name, elapsedTicks > 0 ? (now.ticks - before) / elapsedTicks : Number.NaN);
      rssBytes.set(name, now.rssBytes);
    }
    return {
      seconds,
      cpus,
      rssBytes,
      machineBusyCpus:
        elapsedTicks > 0 ? (machine.busyTicks - this.from.machine.busyTicks) / elapsedTicks : Number.NaN,
      machineCpus: cpuCount,
      machineUsedMemoryBytes: machine.usedMemoryBytes,
    };
  }
}
