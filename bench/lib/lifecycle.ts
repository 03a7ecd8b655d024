/**
 * Cleanup that must run however the benchmark ends: normally (the benchmark calls it), on an error
 * (run.ts calls it), or on Ctrl-C / SIGTERM (the handlers below call it, then exit 130).
 */
const cleanups: (() => Promise<void>)[] = [];
let interrupted = false;

export function addCleanup(cleanup: () => Promise<void>): void {
  cleanups.push(cleanup);
}

export async function runCleanups(): Promise<void> {
  while (cleanups.length > 0) {
    const cleanup = cleanups.pop() as () => Promise<void>;
    try {
      await cleanup();
    } catch (error) {
      console.error(`cleanup failed: ${error instanceof Error ? error.message : String(error)}`);
    }
  }
}

export function wasInterrupted(): boolean {
  return interrupted;
}

export function installSignalHandlers(): void {
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      interrupted = true;
      console.error(`\n${signal}: stopping everything the benchmark started…`);
      // A call still waiting on a client the cleanup closes throws from a timer; that must not end the process
      // before the servers are stopped (it once left a whole fleet's stack running).
      const whileStopping = (error: unknown) =>
        console.error(`while stopping: ${error instanceof Error ? error.message : String(error)}`);
      process.on('uncaughtException', whileStopping);
      process.on('unhandledRejection', whileStopping);
      void runCleanups().finally(() => process.exit(130));
    });
  }
}
