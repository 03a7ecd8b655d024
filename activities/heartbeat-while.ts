import { Context } from '@temporalio/activity';

/**
 * Heartbeats every `everyMs` while `work` runs, so that a worker lost in the middle of a long agent call shows
 * within the activity's heartbeat timeout rather than its start-to-close timeout. It never reacts to a cancel:
 * the call runs to its end, as the workflow's WAIT_CANCELLATION_COMPLETED expects. Outside an activity (a
 * direct call in a test) or in a local one (which cannot heartbeat: the workflow task it runs in is kept
 * alive instead) it only runs the work.
 */
export async function heartbeatWhile<T>(work: () => Promise<T>, everyMs = 2_000): Promise<T> {
  let ctx: Context;
  try {
    ctx = Context.current();
  } catch {
    return work();
  }
  if (ctx.info.isLocal) return work();
  ctx.heartbeat();
  const timer = setInterval(() => ctx.heartbeat(), everyMs);
  try {
    return await work();
  } finally {
    clearInterval(timer);
  }
}
