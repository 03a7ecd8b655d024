import fs from 'node:fs';
import { listProcesses, sleep, type ProcEntry } from './proc-table.ts';

/** Set in the launcher's environment, so every process it starts, and their children, carry it. */
export const STACK_MARKER = 'VMMIG_STACK_DATA_DIR';

/** The kinds of server we start ourselves; what the Ctrl-C check looks for. */
export const SERVER_PATTERN = /qemu-system|etcd|influxd|postgres|temporal/;

/**
 * Processes of the dev stack that uses `dataDir`: those carrying the marker in their environment,
 * and servers whose command line names a path inside the data dir (they may have been started
 * by an older launcher). The calling process and its ancestors are never listed.
 */
export function stackProcesses(dataDir: string): ProcEntry[] {
  const spared = ancestorsOfSelf();
  return listProcesses().filter(
    (p) =>
      !spared.has(p.pid) &&
      (hasMarker(p.pid, dataDir) || (SERVER_PATTERN.test(p.cmdline) && p.cmdline.includes(dataDir))),
  );
}

/** SIGTERM, up to graceMs for them to go, then SIGKILL whatever is left; returns what was found. */
export async function killStackProcesses(dataDir: string, graceMs = 5_000): Promise<ProcEntry[]> {
  const found = stackProcesses(dataDir);
  if (found.length === 0) return found;
  signalAll(found, 'SIGTERM');
  const deadline = Date.now() + graceMs;
  while (Date.now() < deadline && stackProcesses(dataDir).length > 0) await sleep(200);
  signalAll(stackProcesses(dataDir), 'SIGKILL');
  await sleep(200);
  return found;
}

function signalAll(entries: ProcEntry[], signal: NodeJS.Signals): void {
  for (const entry of entries) {
    try {
      process.kill(entry.pid, signal);
    } catch {
      // Gone already.
    }
  }
}

function hasMarker(pid: number, dataDir: string): boolean {
  try {
    return fs.readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0').includes(`${STACK_MARKER}=${dataDir}`);
  } catch {
    return false;
  }
}

function ancestorsOfSelf(): Set<number> {
  const byPid = new Map(listProcesses().map((p) => [p.pid, p]));
  const ancestors = new Set<number>();
  for (let pid: number | undefined = process.pid; pid && !ancestors.has(pid); pid = byPid.get(pid)?.ppid) {
    ancestors.add(pid);
  }
  return ancestors;
}
