import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { historyToJSON } from '@temporalio/common/lib/proto-utils.js';
import type { MiniStack } from './mini-stack.ts';

/**
 * With RECORD_HISTORIES=1, saves the history of this stack's latest closed run of a workflow type to
 * test/histories/<file>, for the replay test.
 */
export async function recordLatestHistory(
  stack: MiniStack,
  workflowType: string,
  file: string,
): Promise<void> {
  if (!process.env.RECORD_HISTORIES) return;
  const query = `WorkflowType='${workflowType}' AND TaskQueue='${stack.taskQueue}' AND ExecutionStatus!='Running'`;
  for await (const run of stack.temporal.workflow.list({ query })) {
    const history = await stack.temporal.workflow.getHandle(run.workflowId, run.runId).fetchHistory();
    await writeFile(path.join('test', 'histories', file), historyToJSON(history));
    return;
  }
  throw new Error(`no closed ${workflowType} run to record`);
}
