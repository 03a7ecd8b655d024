import { createRequire } from 'node:module';
import { bundleWorkflowCode, NativeConnection, Runtime, Worker } from '@temporalio/worker';
import type { Activities } from '../activities/index.ts';
import type { Db } from '../db/client.ts';
import { recordEvent } from '../db/inventory.ts';
import { coordinationTaskQueue } from '../domain/task-queues.ts';
import { waitingEvents } from './waiting-events.ts';

const require = createRequire(import.meta.url);
export const workflowsPath = require.resolve('../workflows/index.ts');

export interface WorkerOptions {
  connection: NativeConnection;
  namespace: string;
  taskQueue: string;
  activities: Activities;
  /** Where a retried migration step says what it waits for. */
  db: Db;
  /** The migrations' worker's workflow task slots; default the SDK's (40). */
  maxConcurrentWorkflowTaskExecutions?: number;
}

/**
 * A worker process's two Temporal workers, run and stopped together: one runs every workflow and activity of
 * the orchestrator on its task queue, the other only the singletons the first one's runs wait on, on their
 * own queue (domain/task-queues.ts says why).
 */
export class OrchestratorWorker {
  constructor(
    private readonly main: Worker,
    private readonly coordination: Worker,
  ) {}

  /** Until both stop; when one stops (shut down, or failed), the other is stopped too. */
  async run(): Promise<void> {
    const runs = [this.main, this.coordination].map((worker) => worker.run().finally(() => this.shutdown()));
    const failed = (await Promise.allSettled(runs)).find((outcome) => outcome.status === 'rejected');
    if (failed) throw failed.reason;
  }

  /** Starts stopping both (those not already stopping): run() resolves once they have. */
  shutdown(): void {
    for (const worker of [this.main, this.coordination])
      if (worker.getState() === 'RUNNING') worker.shutdown();
  }
}

export async function createWorker({
  connection,
  namespace,
  taskQueue,
  activities,
  db,
  maxConcurrentWorkflowTaskExecutions,
}: WorkerOptions): Promise<OrchestratorWorker> {
  const recordWaiting = waitingEvents((event) =>
    recordEvent(db, {
      subjectKind: 'migration',
      subjectId: event.migrationId,
      type: 'waiting',
      level: 'warning',
      message: event.message,
      data: event.data,
    }),
  );
  // Bundled once for both workers: bundling is seconds of CPU at every start.
  const workflowBundle = await bundleWorkflowCode({ workflowsPath, logger: Runtime.instance().logger });
  const main = await Worker.create({
    connection,
    namespace,
    taskQueue,
    workflowBundle,
    activities,
    interceptors: { activity: [recordWaiting] },
    ...(maxConcurrentWorkflowTaskExecutions ? { maxConcurrentWorkflowTaskExecutions } : {}),
  });
  const coordination = await Worker.create({
    connection,
    namespace,
    taskQueue: coordinationTaskQueue(taskQueue),
    workflowBundle,
    // The singletons run no activities; a few task slots are plenty for the handful of them.
    maxConcurrentWorkflowTaskExecutions: 10,
  });
  return new OrchestratorWorker(main, coordination);
}
