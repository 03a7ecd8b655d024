import { existsSync, mkdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';

/**
 * A process held to a share of the machine's CPUs by a cgroup of its own, so that a benchmark on a small machine
 * can give each of several processes what a core of its own would give it. cgroup v2 (`cpu.max`) where the
 * unified hierarchy has the cpu controller, else v1 (`cpu.cfs_quota_us`); either needs root.
 */
export interface CpuQuota {
  /** Where the limit lives, e.g. /sys/fs/cgroup/cpu/vmmig-bench-worker-1. */
  dir: string;
  /** Throttled periods out of all periods since the limit began (how often the quota was the ceiling). */
  throttled(): { periods: number; throttled: number };
  /** Moves any process still in the group back to the root group, then removes the group. */
  remove(): void;
}

const PERIOD_US = 100_000;
const V2_ROOT = '/sys/fs/cgroup';
const V1_CPU = '/sys/fs/cgroup/cpu';

function v2HasCpu(): boolean {
  const controllers = path.join(V2_ROOT, 'cgroup.controllers');
  return existsSync(controllers) && readFileSync(controllers, 'utf8').split(/\s+/).includes('cpu');
}

function removeGroup(dir: string): void {
  if (!existsSync(dir)) return;
  const left = readFileSync(path.join(dir, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean);
  for (const pid of left) writeFileSync(path.join(path.dirname(dir), 'cgroup.procs'), pid);
  rmdirSync(dir);
}

function statOf(file: string): Map<string, number> {
  const stat = new Map<string, number>();
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    const [key, value] = line.trim().split(/\s+/);
    if (key && value !== undefined) stat.set(key, Number(value));
  }
  return stat;
}

/** The group at `dir`, its limit written by `writeLimit`, with `pid` in it. */
function groupOf(dir: string, pid: number, writeLimit: () => void): CpuQuota {
  mkdirSync(dir, { recursive: true });
  writeLimit();
  writeFileSync(path.join(dir, 'cgroup.procs'), String(pid));
  return {
    dir,
    // Both hierarchies' cpu.stat name these two the same.
    throttled: () => {
      const stat = statOf(path.join(dir, 'cpu.stat'));
      return { periods: stat.get('nr_periods') ?? 0, throttled: stat.get('nr_throttled') ?? 0 };
    },
    remove: () => removeGroup(dir),
  };
}

/** Puts `pid` in a new cgroup named `name` whose processes together get at most `cpus` CPUs. */
export function limitCpu(pid: number, name: string, cpus: number): CpuQuota {
  if (!(cpus > 0)) throw new Error(`limitCpu: cpus must be above 0, got ${cpus}`);
  const quotaUs = Math.max(1000, Math.round(cpus * PERIOD_US));
  if (v2HasCpu()) {
    const dir = path.join(V2_ROOT, name);
    return groupOf(dir, pid, () => writeFileSync(path.join(dir, 'cpu.max'), `${quotaUs} ${PERIOD_US}`));
  }
  if (existsSync(path.join(V1_CPU, 'cpu.cfs_quota_us'))) {
    const dir = path.join(V1_CPU, name);
    return groupOf(dir, pid, () => {
      writeFileSync(path.join(dir, 'cpu.cfs_period_us'), String(PERIOD_US));
      writeFileSync(path.join(dir, 'cpu.cfs_quota_us'), String(quotaUs));
    });
  }
  throw new Error(
    `limitCpu: no writable cpu cgroup (neither ${V2_ROOT}/cgroup.controllers with cpu nor ${V1_CPU}): run as root on Linux`,
  );
}
