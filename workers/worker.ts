import { createRequire } from 'node:module';
import { NativeConnection, Worker } from '@temporalio/worker';
import type { Activities } from '../activities/index.ts';

const require = createRequire(import.meta.url);
export const workflowsPath = require.resolve('../workflows/index.ts');

export interface WorkerOptions {
  connection: NativeConnection;
  namespace: string;
  taskQueue: string;
  activities: Activities;
}

/** One worker runs every workflow and activity of the orchestrator on one task queue. */
export function createWorker({
  connection,
  namespace,
  taskQueue,
  activities,
}: WorkerOptions): Promise<Worker> {
  return Worker.create({ connection, namespace, taskQueue, workflowsPath, activities });
}
