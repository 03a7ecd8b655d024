import { listProcesses, sleep, type ProcEntry } from '../../scripts/services/proc-table.ts';

/**
 * Processes whose command line names a path under `root` (our QEMUs, etcd, the Temporal dev server),
 * other than this process and its ancestors. Every server and guest a benchmark starts keeps its files
 * under its own temporary root, so this finds exactly what the benchmark started.
 */
export function processesUnder(root: string): ProcEntry[] {
  const byPid = new Map(listProcesses().map((p) => [p.pid, p]));
  const spared = new Set<number>();
  for (let pid: number | undefined = process.pid; pid && !spared.has(pid); pid = byPid.get(pid)?.ppid)
    spared.add(pid);
  return [...byPid.values()].filter((p) => !spared.has(p.pid) && p.cmdline.includes(root));
}

/** SIGKILL to every process under `root`; synchronous so that it also works in an 'exit' handler. */
export function killProcessesUnder(root: string): ProcEntry[] {
  const found = processesUnder(root);
  for (const entry of found) {
    try {
      process.kill(entry.pid, 'SIGKILL');
    } catch {
      // Gone already.
    }
  }
  return found;
}

/** Kills what is left under `root` and waits (up to 5 s) until it is gone; returns what had to be killed. */
export async function reapProcessesUnder(root: string): Promise<ProcEntry[]> {
  const found = killProcessesUnder(root);
  for (let i = 0; i < 50 && processesUnder(root).length > 0; i++) {
    killProcessesUnder(root);
    await sleep(100);
  }
  return found;
}
