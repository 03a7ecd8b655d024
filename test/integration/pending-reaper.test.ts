import { eq } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PENDING_GRACE_MS, reapNeverStartedMigrations } from '../../api/pending-reaper.ts';
import { NEVER_STARTED_REASON } from '../../api/unstarted-migrations.ts';
import { migrations } from '../../db/schema.ts';
import { guestRunWorkflowId } from '../../domain/workflow-ids.ts';
import { startMiniStack, type MiniStack } from '../helpers/mini-stack.ts';
import { createRunningServer } from '../helpers/migrations.ts';

/**
 * The chaos suite's finding: PostgreSQL went away while the API started a migration, the API answered with
 * an error and nobody asked for the guest again, so its `pending` row never reached a terminal phase.
 */
describe('the reaper of migrations whose workflow never started', () => {
  let stack: MiniStack;

  beforeAll(async () => {
    stack = await startMiniStack({ hosts: [{ name: 'src' }, { name: 'dst' }] });
  });
  afterAll(async () => stack?.stop());

  it('fails a pending row past its grace period whose workflow is not running, and leaves a young one', async () => {
    const vm = await createRunningServer(stack, { name: 'orphan', host: 'src', memoryMb: 1024 });
    const [row] = await stack.db.db
      .insert(migrations)
      .values({
        kind: 'live',
        guestId: vm.id,
        sourceHostId: vm.host.id,
        trigger: 'manual',
        phase: 'pending',
        workflowId: guestRunWorkflowId('live-migrate', vm),
      })
      .returning();
    const now = new Date(row!.requestedAt.getTime() + PENDING_GRACE_MS / 2);
    expect(await reapNeverStartedMigrations(stack.db.db, stack.temporal, now)).toBe(0);

    const later = new Date(row!.requestedAt.getTime() + PENDING_GRACE_MS + 1_000);
    expect(await reapNeverStartedMigrations(stack.db.db, stack.temporal, later)).toBe(1);
    const [after] = await stack.db.db.select().from(migrations).where(eq(migrations.id, row!.id));
    expect(after).toMatchObject({ phase: 'failed', error: NEVER_STARTED_REASON });
    expect(await reapNeverStartedMigrations(stack.db.db, stack.temporal, later)).toBe(0);
  });
});
