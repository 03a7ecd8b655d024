import { readFile } from 'node:fs/promises';

/** Linux reports process times in USER_HZ ticks, 100 per second on every architecture we run on. */
const TICKS_PER_SECOND = 100;
const PAGE_BYTES = 4096;

export interface ProcessSample {
  pid: number;
  /** user + system CPU seconds so far. */
  cpuSeconds: number;
  /** Seconds since the process started. */
  ageSeconds: number;
  rssBytes: number;
  state: string;
}

/** Parses /proc/<pid>/stat (the command name may contain spaces and parentheses). */
export function parseProcStat(stat: string, uptimeSeconds: number): Omit<ProcessSample, 'pid'> | null {
  const close = stat.lastIndexOf(')');
  if (close < 0) return null;
  const fields = stat.slice(close + 2).split(' ');
  // fields[0] is field 3 (state) of proc(5).
  const field = (n: number): number => Number(fields[n - 3]);
  return {
    state: fields[0] ?? '?',
    cpuSeconds: (field(14) + field(15)) / TICKS_PER_SECOND,
    ageSeconds: Math.max(0, uptimeSeconds - field(22) / TICKS_PER_SECOND),
    rssBytes: field(24) * PAGE_BYTES,
  };
}

export async function sampleProcess(pid: number): Promise<ProcessSample | null> {
  try {
    const [stat, uptime] = await Promise.all([
      readFile(`/proc/${pid}/stat`, 'utf8'),
      readFile('/proc/uptime', 'utf8'),
    ]);
    const parsed = parseProcStat(stat, Number(uptime.split(' ')[0]));
    return parsed === null ? null : { pid, ...parsed };
  } catch {
    return null;
  }
}

/** Alive and not a zombie (nobody reaps QEMUs whose agent died: they stay as zombies here). */
export async function processAlive(pid: number): Promise<boolean> {
  const sample = await sampleProcess(pid);
  return sample !== null && sample.state !== 'Z' && sample.state !== 'X';
}

export async function processCommandLine(pid: number): Promise<string[]> {
  try {
    return (await readFile(`/proc/${pid}/cmdline`, 'utf8')).split('\0').filter((s) => s.length > 0);
  } catch {
    return [];
  }
}

/** CPU percent of `cpus` CPUs between two samples of one process; from its start when there is no earlier one. */
export function cpuPercent(
  previous: ProcessSample | undefined,
  current: ProcessSample,
  elapsedSeconds: number,
  cpus: number,
): number {
  const [cpu, seconds] =
    previous === undefined || previous.pid !== current.pid
      ? [current.cpuSeconds, current.ageSeconds]
      : [current.cpuSeconds - previous.cpuSeconds, elapsedSeconds];
  if (seconds <= 0 || cpus <= 0) return 0;
  return Math.max(0, Math.min(100, (cpu / seconds / cpus) * 100));
}
