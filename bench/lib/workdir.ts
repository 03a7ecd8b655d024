import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { addCleanup } from './lifecycle.ts';
import { killProcessesUnder, processesUnder, reapProcessesUnder } from './processes.ts';
import { ms } from './stats.ts';

export interface BenchWorkdir {
  /** The run's temporary directory: servers' data and logs, agent dirs, results.json. */
  root: string;
  /** The run went through: its directory is removed at the cleanup (unless kept). */
  succeeded(): void;
  /** Stops `started` at the cleanup, the last tracked first; returns it. */
  track<T extends { stop(): Promise<void> }>(started: T, what: string): T;
}

/**
 * A benchmark run's temporary directory under the OS temp dir, and the cleanup that ends the run however it
 * ends (registered with addCleanup): what the run tracked is stopped (its servers, stack, guests), then SIGKILL
 * to whatever still runs under the directory, a line saying what was left, and the directory removed unless
 * `keep` or the run failed. A last-resort exit hook kills what runs under it if the process dies without
 * cleaning up.
 */
export function benchWorkdir(options: {
  prefix: string;
  keep: boolean;
  print: (line?: string) => void;
}): BenchWorkdir {
  const { keep, print } = options;
  const root = mkdtempSync(path.join(os.tmpdir(), options.prefix));
  // mkdtemp makes it 0700; postgres runs as the postgres user and must be able to enter it.
  chmodSync(root, 0o755);
  // Last resort if the process dies without cleaning up: nothing under root survives us.
  const exitHook = () => void killProcessesUnder(root);
  process.on('exit', exitHook);

  const tracked: { what: string; stop: () => Promise<void> }[] = [];
  let failed = true;
  let cleaned = false;
  addCleanup(async () => {
    if (cleaned) return;
    cleaned = true;
    const started = Date.now();
    for (const { what, stop } of tracked.reverse()) {
      await stop().catch((error: unknown) => print(`stopping ${what}: ${String(error)}`));
    }
    const leftovers = await reapProcessesUnder(root);
    const remaining = processesUnder(root);
    print(
      `stopped everything in ${ms(Date.now() - started)}; ` +
        (leftovers.length === 0
          ? 'no process left behind'
          : `WARNING: had to kill ${leftovers.length} leftover process(es): ${leftovers.map((p) => `${p.pid} ${p.cmdline.slice(0, 60)}`).join('; ')}`) +
        (remaining.length > 0 ? `; STILL RUNNING: ${remaining.map((p) => p.pid).join(', ')}` : ''),
    );
    if (keep || failed) print(`logs and guest consoles kept in ${root}`);
    else rmSync(root, { recursive: true, force: true });
    process.off('exit', exitHook);
  });
  return {
    root,
    succeeded: () => {
      failed = false;
    },
    track: (started, what) => {
      tracked.push({ what, stop: () => started.stop() });
      return started;
    },
  };
}
