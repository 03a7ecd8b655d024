import type { ExitInfo, ManagedProcess } from '../process.ts';

export interface StoppableHandle {
  process: ManagedProcess;
  stop(): Promise<void>;
}

interface Entry {
  name: string;
  handle: StoppableHandle;
  /** Consecutive entries of one group stop together (the agents). */
  group: string;
}

export type CrashListener = (name: string, process: ManagedProcess, exit: ExitInfo) => void;

/** What the launcher started, in start order; stops it all in reverse order, exactly once. */
export class RunningStack {
  private readonly entries: Entry[] = [];
  private stopping: Promise<void> | undefined;

  constructor(private readonly onCrash: CrashListener) {}

  get isStopping(): boolean {
    return this.stopping !== undefined;
  }

  add(name: string, handle: StoppableHandle, group = name): void {
    if (this.stopping) {
      // Started while we were already shutting down (Ctrl-C during start): do not keep it.
      void handle.stop();
      return;
    }
    this.entries.push({ name, handle, group });
    void handle.process.exited.then((exit) => {
      if (!this.stopping && !handle.process.isStopping()) this.onCrash(name, handle.process, exit);
    });
  }

  stopAll(log: (message: string) => void): Promise<void> {
    this.stopping ??= this.stopInReverse(log);
    return this.stopping;
  }

  private async stopInReverse(log: (message: string) => void): Promise<void> {
    const remaining = [...this.entries];
    while (remaining.length > 0) {
      const group = (remaining.at(-1) as Entry).group;
      const batch: Entry[] = [];
      while (remaining.length > 0 && (remaining.at(-1) as Entry).group === group)
        batch.push(remaining.pop() as Entry);
      log(`stopping ${batch.map((e) => e.name).join(', ')}`);
      const results = await Promise.allSettled(batch.map((e) => e.handle.stop()));
      for (const [i, result] of results.entries()) {
        if (result.status === 'rejected') log(`could not stop ${batch[i]?.name}: ${String(result.reason)}`);
      }
    }
  }
}
