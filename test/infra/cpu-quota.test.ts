import { spawn } from 'node:child_process';
import { accessSync, constants, existsSync, readFileSync } from 'node:fs';
import { once } from 'node:events';
import { describe, expect, it } from 'vitest';
import { limitCpu } from '../../bench/lib/cpu-quota.ts';

/** The fleet benchmark's `--worker-cpu-percent` holds each worker to a share of a CPU with this. */

const writable = (dir: string) => {
  try {
    accessSync(dir, constants.W_OK);
    return true;
  } catch {
    return false;
  }
};
const cgroupCpu =
  (existsSync('/sys/fs/cgroup/cgroup.controllers') &&
    readFileSync('/sys/fs/cgroup/cgroup.controllers', 'utf8').includes('cpu') &&
    writable('/sys/fs/cgroup')) ||
  (existsSync('/sys/fs/cgroup/cpu/cpu.cfs_quota_us') && writable('/sys/fs/cgroup/cpu'));

/** User and system CPU seconds of a live process, from /proc. */
function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

describe.skipIf(!cgroupCpu)('limitCpu (cgroup CPU hold)', () => {
  it('holds a busy process to its share and lets it go again', async () => {
    // Busy for 3 s of wall time, then it prints the CPU it used and waits to be read.
    const child = spawn(
      process.execPath,
      ['-e', 'const end = Date.now() + 3000; while (Date.now() < end) {} setTimeout(() => {}, 60_000)'],
      { stdio: 'ignore' },
    );
    try {
      const quota = limitCpu(child.pid!, `vmmig-test-cpu-quota-${child.pid}`, 0.2);
      expect(readFileSync(`${quota.dir}/cgroup.procs`, 'utf8').split('\n')).toContain(String(child.pid));
      await new Promise((resolve) => setTimeout(resolve, 3500));
      // Held to 0.2 CPU, 3 s of busy wall time is about 0.6 s of CPU; unheld it would be 3 s.
      expect(cpuSeconds(child.pid!)).toBeLessThan(1.5);
      expect(quota.throttled().throttled).toBeGreaterThan(0);
      quota.remove();
      expect(existsSync(quota.dir)).toBe(false);
    } finally {
      child.kill('SIGKILL');
      await once(child, 'exit').catch(() => {});
    }
  });

  it('refuses a share that is not above zero', () => {
    expect(() => limitCpu(process.pid, 'vmmig-test-cpu-quota-zero', 0)).toThrow(
      'cpus must be above 0, got 0',
    );
  });
});
