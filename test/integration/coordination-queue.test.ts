import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { coordinationTaskQueue } from '../../domain/task-queues.ts';
import { migrationSlotsWorkflowId } from '../../domain/workflow-ids.ts';
import { clusters } from '../../db/schema.ts';
import { lockHolderQuery, tryAcquireLockUpdate } from '../../workflows/migration-lock-messages.ts';
import { startMiniStack, type MiniStack } from '../helpers/mini-stack.ts';
import { waitFor } from '../helpers/wait.ts';
import { createRunningServer, liveMigrate, waitForMigrationEnd } from '../helpers/migrations.ts';

/**
 * The fleet benchmark's stall: forty migrations asked for their slots at once, each from a local activity that
 * holds its workflow task, and so one of the worker's forty workflow task slots, until the slots workflow
 * answers; that workflow then had no slot to run on, and nothing completed for a minute. Here the worker has two
 * slots and four migrations ask together: they all finish, since the slots workflow runs on a queue of its own.
 */
describe('the coordination singletons on their own task queue', () => {
  let stack: MiniStack;
  const guests = ['q1', 'q2', 'q3', 'q4'];

  beforeAll(async () => {
    stack = await startMiniStack({
      hosts: [{ name: 'a' }, { name: 'b' }, { name: 'c' }, { name: 'd' }],
      workerTaskSlots: 2,
    });
    for (const [i, name] of guests.entries()) {
      await createRunningServer(stack, { name, host: i < 2 ? 'a' : 'b', memoryMb: 256 });
    }
  });
  afterAll(async () => stack?.stop());

  it('lets more migrations than the worker has workflow task slots ask for their slots at once', async () => {
    const started = await Promise.all(
      guests.map((name, i) => liveMigrate(stack, name, { prefer_host: i < 2 ? 'c' : 'd' })),
    );
    expect(started.map((res) => res.status)).toEqual([202, 202, 202, 202]);
    // A stalled batch waits out its local activities' 30 s timeouts before anything moves again.
    const ended = await Promise.all(started.map((res) => waitForMigrationEnd(stack, res.body.id, 25_000)));
    expect(ended.map((migration) => migration.phase)).toEqual([
      'completed',
      'completed',
      'completed',
      'completed',
    ]);

    const [cluster] = await stack.db.db.select({ id: clusters.id }).from(clusters);
    const slots = await stack.temporal.workflow.getHandle(migrationSlotsWorkflowId(cluster!.id)).describe();
    expect(slots.taskQueue).toBe(coordinationTaskQueue(stack.taskQueue));
    const lock = await stack.temporal.workflow
      .getHandle(stack.lockWorkflowId)
      .describe()
      .catch(() => null);
    // The lock starts with the first alert batch; none ran here.
    expect(lock).toBeNull();
  });

  it('moves a lock begun on the migrations’ queue (before the coordination queue) there at its continue-as-new', async () => {
    const workflowId = `${stack.lockWorkflowId}-old`;
    const old = await stack.temporal.workflow.start('migrationLock', {
      workflowId,
      taskQueue: stack.taskQueue,
      args: [],
    });
    // The lock continues as new after 500 requests: refused ones count too.
    await old.executeUpdate(tryAcquireLockUpdate, {
      args: [{ owner: 'holder', description: 'holds it', leaseMs: 600_000 }],
    });
    for (let i = 1; i < 500; i++) {
      await old.executeUpdate(tryAcquireLockUpdate, {
        args: [{ owner: `asker-${i}`, description: 'asks', leaseMs: 600_000 }],
      });
    }
    const latest = stack.temporal.workflow.getHandle(workflowId);
    await waitFor('the lock to continue as new', async () =>
      (await latest.describe()).runId !== old.firstExecutionRunId ? true : null,
    );
    expect((await latest.describe()).taskQueue).toBe(coordinationTaskQueue(stack.taskQueue));
    expect(await latest.query(lockHolderQuery)).toMatchObject({ owner: 'holder' });
    await latest.terminate('test over');
  });
});
