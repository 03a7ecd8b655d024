import type { ManagedProcess } from './process.ts';
import { withLogTail } from './log-tail.ts';
import { sleep } from './proc-table.ts';

export interface WaitOptions {
  /** What is awaited, for the error message: 'postgres to accept connections'. */
  what: string;
  timeoutMs: number;
  intervalMs?: number;
  /** The process(es) expected to answer: an early exit ends the wait, and the log is quoted. */
  process?: ManagedProcess | readonly ManagedProcess[];
  signal?: AbortSignal;
}

/** Polls until probe() returns true; a probe that throws counts as "not yet". */
export async function waitUntil(probe: () => Promise<boolean>, options: WaitOptions): Promise<void> {
  const deadline = Date.now() + options.timeoutMs;
  const watched = options.process === undefined ? [] : [options.process].flat();
  let lastError = '';
  for (;;) {
    if (options.signal?.aborted) throw new Error(`stopped while waiting for ${options.what}`);
    const dead = watched.find((p) => !p.isRunning());
    if (dead) {
      const { code, signal } = await dead.exited;
      throw new Error(
        withLogTail(`${dead.name} exited (${signal ?? `code ${code}`}) before ${options.what}`, dead.logFile),
      );
    }
    try {
      if (await probe()) return;
      lastError = '';
    } catch (error) {
      lastError = error instanceof Error ? error.message : String(error);
    }
    if (Date.now() > deadline) {
      const cause = lastError ? ` (last error: ${lastError})` : '';
      throw failure(
        options,
        `timed out after ${options.timeoutMs / 1000} s waiting for ${options.what}${cause}`,
      );
    }
    await sleep(options.intervalMs ?? 200);
  }
}

function failure(options: WaitOptions, message: string): Error {
  const [only, ...others] = options.process === undefined ? [] : [options.process].flat();
  return new Error(only && others.length === 0 ? withLogTail(message, only.logFile) : message);
}

/** The HTTP status of a GET, or an exception when nothing answers. */
export async function httpStatus(url: string, headers: Record<string, string> = {}): Promise<number> {
  const response = await fetch(url, { headers, signal: AbortSignal.timeout(2_000) });
  await response.body?.cancel();
  return response.status;
}
