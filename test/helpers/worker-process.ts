import { spawn, type ChildProcess } from 'node:child_process';
import os from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { inject } from 'vitest';
import type { MiniStack } from './mini-stack.ts';
import { waitFor } from './wait.ts';

/** How long a process stopped gracefully may take before it is killed. */
const GRACEFUL_STOP_WAIT_MS = 30_000;
/** What an entry point (worker, API) run as a child process needs to join the stack's servers. */
export function stackProcessEnv(stack: MiniStack): NodeJS.ProcessEnv {
  return {
    ...process.env,
    DATABASE_URL: stack.db.url,
    TEMPORAL_ADDRESS: inject('temporalAddress'),
    TEMPORAL_NAMESPACE: inject('temporalNamespace'),
    TEMPORAL_TASK_QUEUE: stack.taskQueue,
    ETCD_ENDPOINTS: inject('etcdEndpoints').join(','),
    ETCD_PREFIX: stack.etcdPrefix,
    AGENT_CREDENTIAL_KEY: stack.agentCredentialKey,
  };
}

/** A worker bundles the workflows at start: on a busy two-core machine that alone takes tens of seconds. */
export const PROCESS_START_TIMEOUT_MS = 90_000;

/** The real worker entry point in its own process for the stack, so it can die the way a host does: SIGKILL. */
export function startWorkerProcess(stack: MiniStack, env: NodeJS.ProcessEnv = {}): Promise<ChildProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'workers/main.ts'], {
    env: { ...stackProcessEnv(stack), ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const output = collectOutput(child, 'worker');
  return waitFor(
    'the worker process to poll',
    async () => {
      if (child.exitCode !== null) throw new Error(`worker exited ${child.exitCode}: ${output.text}`);
      return output.text.includes('worker polling') ? child : null;
    },
    { timeoutMs: PROCESS_START_TIMEOUT_MS },
  );
}

/** A child's stdout and stderr as they come; DEBUG_PROCESSES=1 echoes them to the test's stderr too. */
export function collectOutput(child: ChildProcess, label: string): { text: string } {
  const output = { text: '' };
  const take = (chunk: Buffer) => {
    output.text += chunk.toString();
    if (process.env.DEBUG_PROCESSES) process.stderr.write(`[${label} ${child.pid}] ${chunk.toString()}`);
  };
  child.stdout?.on('data', take);
  child.stderr?.on('data', take);
  return output;
}

/** The identity Temporal records for a worker process (the SDK's default: pid@hostname). */
export function workerIdentity(child: ChildProcess): string {
  return `${child.pid}@${os.hostname()}`;
}

/**
 * Sends the signal and waits for the process to exit; one that outlives a graceful stop is SIGKILLed, so a
 * test's teardown ends. Answers how it ended.
 */
export async function stopProcess(
  child: ChildProcess,
  signal: NodeJS.Signals = 'SIGTERM',
): Promise<{ code: number | null; signal: NodeJS.Signals | null; forced: boolean }> {
  if (child.exitCode !== null || child.signalCode !== null)
    return { code: child.exitCode, signal: child.signalCode, forced: false };
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, exitSignal) => resolve({ code, signal: exitSignal })),
  );
  child.kill(signal);
  const ended = await Promise.race([exited, sleep(GRACEFUL_STOP_WAIT_MS).then(() => null)]);
  if (ended) return { ...ended, forced: false };
  child.kill('SIGKILL');
  return { ...(await exited), forced: true };
}
