import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, mkdirSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

/** One of the orchestrator's own processes, started from its real entry point as production runs it. */
export interface BenchProcess {
  name: string;
  pid: number;
  logFile: string;
  /** SIGTERM (each entry point's graceful stop), then SIGKILL after 30 s. */
  stop(): Promise<void>;
}

const START_TIMEOUT_MS = 10 * 60_000;
const STOP_GRACE_MS = 30_000;

/**
 * Spawns `tsx <entry>` with `env`, its output in <logDir>/<name>.log, and waits until a line matches `ready`
 * (a worker bundles its workflows first; a fleet of 1,000 hosts starts them all first).
 */
export async function startEntryPoint(options: {
  name: string;
  entry: string;
  env: NodeJS.ProcessEnv;
  logDir: string;
  ready: RegExp;
}): Promise<BenchProcess> {
  mkdirSync(options.logDir, { recursive: true });
  const logFile = path.join(options.logDir, `${options.name}.log`);
  const log = createWriteStream(logFile, { flags: 'a' });
  const child: ChildProcess = spawn(process.execPath, ['--import', 'tsx', options.entry], {
    env: options.env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let seen = '';
  let ready = false;
  const take = (chunk: Buffer) => {
    log.write(chunk);
    if (!ready) {
      seen = (seen + chunk.toString()).slice(-20_000);
      ready = options.ready.test(seen);
    }
  };
  child.stdout?.on('data', take);
  child.stderr?.on('data', take);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const deadline = Date.now() + START_TIMEOUT_MS;
  while (!ready) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`${options.name} exited (${child.exitCode ?? child.signalCode}): ${seen.slice(-2000)}`);
    }
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`${options.name} not ready within ${START_TIMEOUT_MS / 1000} s; see ${logFile}`);
    }
    await sleep(200);
  }
  return {
    name: options.name,
    pid: child.pid!,
    logFile,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        const ended = await Promise.race([exited.then(() => true), sleep(STOP_GRACE_MS).then(() => false)]);
        if (!ended) child.kill('SIGKILL');
        await exited;
      }
      log.end();
    },
  };
}
