import fs from 'node:fs';
import os from 'node:os';
import { listProcesses } from '../../scripts/services/proc-table.ts';

/** Clock ticks of the whole machine and of this process's tree, at one moment. */
export interface CpuSnapshot {
  /** Sum over CPUs of every /proc/stat field (jiffies). */
  totalTicks: number;
  /** totalTicks minus idle and iowait. */
  busyTicks: number;
  /**
   * utime + stime + cutime + cstime of this process and every live descendant: what the benchmark's
   * own servers, agents and QEMUs used, including children that exited and were reaped meanwhile.
   */
  ownTicks: number;
}

function processTicks(pid: number): number {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // fields[0] is field 3 of proc(5); utime..cstime are fields 14..17.
    return [11, 12, 13, 14].reduce((sum, i) => sum + Number(fields[i] ?? 0), 0);
  } catch {
    return 0;
  }
}

export function cpuSnapshot(): CpuSnapshot {
  const line = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '';
  const values = line.trim().split(/\s+/).slice(1, 9).map(Number);
  const totalTicks = values.reduce((a, b) => a + b, 0);
  const idle = (values[3] ?? 0) + (values[4] ?? 0);
  const processes = listProcesses();
  const children = new Map<number, number[]>();
  for (const p of processes) children.set(p.ppid, [...(children.get(p.ppid) ?? []), p.pid]);
  let ownTicks = 0;
  const stack = [process.pid];
  const seen = new Set<number>();
  while (stack.length > 0) {
    const pid = stack.pop() as number;
    if (seen.has(pid)) continue;
    seen.add(pid);
    ownTicks += processTicks(pid);
    stack.push(...(children.get(pid) ?? []));
  }
  return { totalTicks, busyTicks: totalTicks - idle, ownTicks };
}

/** Average number of CPUs busy between two snapshots: with our own work, and with everything else. */
export function cpuBetween(before: CpuSnapshot, after: CpuSnapshot): { own: number; other: number } {
  const cpus = os.cpus().length;
  const elapsed = (after.totalTicks - before.totalTicks) / cpus;
  if (elapsed <= 0) return { own: Number.NaN, other: Number.NaN };
  const own = (after.ownTicks - before.ownTicks) / elapsed;
  const busy = (after.busyTicks - before.busyTicks) / elapsed;
  return { own, other: Math.max(0, busy - own) };
}
