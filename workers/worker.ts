import { createRequire } from 'node:module';
import { NativeConnection, Worker } from '@temporalio/worker';
import type { Activities } from '../activities/index.ts';
import type { Db } from '../db/client.ts';
import { recordEvent } from '../db/inventory.ts';
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
}

/** One worker runs every workflow and activity of the orchestrator on one task queue. */
export function createWorker({
  connection,
  namespace,
  taskQueue,
  activities,
  db,
}: WorkerOptions): Promise<Worker> {
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
  return Worker.create({
    connection,
    namespace,
    taskQueue,
    workflowsPath,
    activities,
    interceptors: { activity: [recordWaiting] },
  });
}
