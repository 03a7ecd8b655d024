import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { processGroupMembers, sleep } from './proc-table.ts';

export interface StartProcessOptions {
  /** Short name used in messages, e.g. 'postgres'. */
  name: string;
  command: string;
  args: readonly string[];
  /** stdout and stderr of the process are appended here. */
  logFile: string;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Signal that asks the program for a clean shutdown (postgres wants SIGINT for a fast one). */
  stopSignal?: NodeJS.Signals;
  /** How long stop() waits after stopSignal before SIGKILL of the whole process group. */
  graceMs?: number;
}

export interface ExitInfo {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface ManagedProcess {
  readonly name: string;
  readonly pid: number;
  readonly logFile: string;
  /** Settles when the leader exits, whoever stopped it. */
  readonly exited: Promise<ExitInfo>;
  isRunning(): boolean;
  /** True once stop() was called: an exit after that is expected, not a crash. */
  isStopping(): boolean;
  /**
   * stopSignal to the program itself (not its group: an agent must stop its own QEMU children,
   * postgres its backends), up to graceMs for it to exit, then SIGKILL to whatever is left of
   * its process group. Resolves when nothing of the group is left; safe to call twice.
   */
  stop(): Promise<void>;
}

const liveGroups = new Set<number>();
let exitHookInstalled = false;

/**
 * Every process starts in its own session and process group (detached), so a Ctrl-C in the
 * terminal reaches only the launcher, which then stops the children in order; the group also
 * lets stop() find what a child left behind (postgres backends, QEMU guests of an agent).
 */
export function startProcess(options: StartProcessOptions): ManagedProcess {
  installExitHook();
  fs.mkdirSync(path.dirname(options.logFile), { recursive: true });
  const logFd = fs.openSync(options.logFile, 'a');
  fs.writeSync(
    logFd,
    `\n--- ${new Date().toISOString()} ${options.name}: ${[options.command, ...options.args].join(' ')}\n`,
  );
  const child = spawn(options.command, options.args, {
    cwd: options.cwd,
    env: options.env ?? process.env,
    stdio: ['ignore', logFd, logFd],
    detached: true,
  });
  fs.closeSync(logFd);

  let running = true;
  let stopping = false;
  let stopPromise: Promise<void> | undefined;
  const exited = new Promise<ExitInfo>((resolve) => {
    child.once('error', (error) => {
      running = false;
      fs.appendFileSync(options.logFile, `--- could not start ${options.command}: ${error.message}\n`);
      resolve({ code: 127, signal: null });
    });
    child.once('exit', (code, signal) => {
      running = false;
      resolve({ code, signal });
    });
  });
  const pid = child.pid ?? -1;
  if (pid > 0) liveGroups.add(pid);

  const stop = async (): Promise<void> => {
    stopping = true;
    if (pid <= 0) return;
    if (running) {
      signalLeader(pid, options.stopSignal ?? 'SIGTERM');
      const graceMs = options.graceMs ?? 10_000;
      if (!(await exitsWithin(exited, graceMs))) {
        fs.appendFileSync(options.logFile, `--- no exit ${graceMs} ms after stop signal: SIGKILL\n`);
      }
    }
    await killGroup(pid);
    await exited;
    liveGroups.delete(pid);
  };

  return {
    name: options.name,
    pid,
    logFile: options.logFile,
    exited,
    isRunning: () => running,
    isStopping: () => stopping,
    stop: () => (stopPromise ??= stop()),
  };
}

/** SIGKILL to every member of the group, repeated until none is left (or 5 s passed). */
export async function killGroup(pgid: number): Promise<void> {
  for (let attempt = 0; attempt < 50; attempt++) {
    if (processGroupMembers(pgid).length === 0) return;
    try {
      process.kill(-pgid, 'SIGKILL');
    } catch {
      return;
    }
    await sleep(100);
  }
}

/** Whether `exited` settles within ms; the timer is cleared so it never holds the event loop open. */
async function exitsWithin(exited: Promise<ExitInfo>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), ms);
  });
  try {
    return await Promise.race([exited.then(() => true as const), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

function signalLeader(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch {
    // Already gone: nothing to ask.
  }
}

/** If the parent dies without stopping its children (a crash, process.exit), take them along. */
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const pgid of liveGroups) {
      try {
        process.kill(-pgid, 'SIGKILL');
      } catch {
        // Group already empty.
      }
    }
  });
}
