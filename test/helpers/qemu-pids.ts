import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { processCommandLine } from '../../agent/proc-stat.ts';
import { listProcesses } from '../../scripts/services/proc-table.ts';

/**
 * The QEMU processes of one host: every process whose command line names a path under the host's agent dir
 * (pid file, QMP socket, serial log), and the pids its guests' qemu.pid files hold when such a process is
 * alive. Other hosts' and other runs' QEMUs never match. Used by the host-down e2e test and benchmark.
 */
export async function qemuPidsOf(agentDir: string): Promise<number[]> {
  const marker = `${agentDir}${path.sep}`;
  const pids = new Set(
    listProcesses()
      .filter((p) => /qemu/.test(p.cmdline.split(' ')[0] ?? '') && p.cmdline.includes(marker))
      .map((p) => p.pid),
  );
  const guestsDir = path.join(agentDir, 'guests');
  for (const id of await readdir(guestsDir).catch(() => [] as string[])) {
    const pid = Number((await readFile(path.join(guestsDir, id, 'qemu.pid'), 'utf8').catch(() => '')).trim());
    if (Number.isInteger(pid) && pid > 0 && (await processCommandLine(pid)).some((a) => a.includes(marker)))
      pids.add(pid);
  }
  return [...pids];
}
