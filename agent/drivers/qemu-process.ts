import { spawn } from 'node:child_process';
import { open } from 'node:fs/promises';
import { processAlive, processCommandLine } from '../proc-stat.ts';

export interface SpawnedQemu {
  pid: number;
  /** Resolves with the exit code (or signal) when the process ends. */
  exited: Promise<string>;
}

/**
 * Starts QEMU in its own session so that it outlives the agent (a restarted agent reattaches to it).
 * Its stdout/stderr go to `logPath`; an early exit (bad command line) rejects with the log's tail.
 */
export async function spawnQemu(binary: string, args: string[], logPath: string): Promise<SpawnedQemu> {
  const log = await open(logPath, 'a');
  try {
    const child = spawn(binary, args, { detached: true, stdio: ['ignore', log.fd, log.fd] });
    const exited = new Promise<string>((resolve) => {
      child.once('exit', (code, signal) => resolve(signal ?? `code ${code}`));
      child.once('error', (error) => resolve(`spawn error: ${error.message}`));
    });
    const pid = await new Promise<number>((resolve, reject) => {
      child.once('spawn', () => resolve(child.pid!));
      child.once('error', reject);
    });
    child.unref();
    return { pid, exited };
  } finally {
    await log.close();
  }
}

/** The pid is a live QEMU of this guest (pids get reused; the guest dir is on its command line). */
export async function isGuestQemu(pid: number, guestDir: string): Promise<boolean> {
  if (!(await processAlive(pid))) return false;
  const cmdline = await processCommandLine(pid);
  return cmdline.some((arg) => arg.includes(guestDir));
}

/** How often a stopping process is looked at: QEMU exits within milliseconds of `quit`, and a migration waits on it. */
const EXIT_POLL_MS = 10;

export async function waitForExit(pid: number, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (!(await processAlive(pid))) return true;
    await new Promise((resolve) => setTimeout(resolve, EXIT_POLL_MS));
  }
  return !(await processAlive(pid));
}

export function signal(pid: number, name: NodeJS.Signals): void {
  try {
    process.kill(pid, name);
  } catch {
    // Already gone.
  }
}
