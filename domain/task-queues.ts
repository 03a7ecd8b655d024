const COORDINATION_SUFFIX = '-coordination';

/**
 * The task queue of the singletons other runs wait on: each cluster's `migrationSlots` and the `migration-lock`.
 * A migration asks for its slot from a local activity, which holds its workflow task, and with it one of the
 * worker's workflow task slots, until the answer comes. Served from the migrations' own queue, forty migrations
 * asking at once held every slot of a worker (the SDK's default is 40) and the slots workflow had none left to
 * run on and answer them: the fleet benchmark's one-worker window stood still for a minute. On a queue of their
 * own, served in every worker process by a worker of their own, they always have one. The same name for the same
 * queue, however often applied.
 */
export function coordinationTaskQueue(taskQueue: string): string {
  return taskQueue.endsWith(COORDINATION_SUFFIX) ? taskQueue : `${taskQueue}${COORDINATION_SUFFIX}`;
}
