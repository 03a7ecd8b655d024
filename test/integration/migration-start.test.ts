import { randomUUID } from 'node:crypto';
import { eq } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NEVER_STARTED_REASON } from '../../api/unstarted-migrations.ts';
import { insertMigration } from '../../db/migration-store.ts';
import { migrations } from '../../db/schema.ts';
import { guestRunWorkflowId } from '../../domain/workflow-ids.ts';
import { startMiniStack, type MiniStack } from '../helpers/mini-stack.ts';
import {
  createRunningServer,
  liveMigrate,
  migrationOf,
  waitForPhase,
  type ServerBody,
} from '../helpers/migrations.ts';

/** What the API leaves behind when it stops between recording a request and starting its workflow. */
function orphanRow(vm: ServerBody) {
  return insertMigration(stack.db.db, {
    kind: 'live',
    guestId: vm.id,
    sourceHostId: vm.host.id,
    trigger: 'manual',
    phase: 'pending',
    options: {},
    workflowId: guestRunWorkflowId('live-migrate', vm),
  });
}

let stack: MiniStack;

describe('starting a live migration exactly once', () => {
  beforeAll(async () => {
    stack = await startMiniStack({ hosts: [{ name: 'src' }, { name: 'dst' }] });
  });
  afterAll(async () => stack?.stop());

  it('fails a pending migration whose workflow never started, and starts the new request', async () => {
    const vm = await createRunningServer(stack, { name: 'orphaned', host: 'src', memoryMb: 512 });
    const orphan = await orphanRow(vm);

    const started = await liveMigrate(stack, 'orphaned');
    expect(started.status, JSON.stringify(started.body)).toBe(202);
    expect(started.body.id).not.toBe(orphan.id);

    const old = await migrationOf(stack, orphan.id);
    expect(old.phase).toBe('failed');
    expect(old.error).toBe(NEVER_STARTED_REASON);
    expect(old.events).toEqual([
      expect.objectContaining({ type: 'never_started', message: NEVER_STARTED_REASON }),
    ]);
    expect((await waitForPhase(stack, started.body.id, ['completed', 'failed'])).phase).toBe('completed');
  });

  it('fails a never-started migration of a group member too, and moves the group', async () => {
    await createRunningServer(stack, { name: 'pair-1', host: 'src', labels: { 'affinity.pair': 'p' } });
    const member = await createRunningServer(stack, {
      name: 'pair-2',
      host: 'src',
      labels: { 'affinity.pair': 'p' },
    });
    const orphan = await orphanRow(member);

    const res = await stack.api<{ migrations: { server: string; id: string }[] }>(
      'POST',
      '/v1/servers/pair-1/live-migrate',
      { with_same_labels: true, prefer_host: 'dst' },
    );
    expect(res.status, JSON.stringify(res.body)).toBe(202);
    expect((await migrationOf(stack, orphan.id)).error).toBe(NEVER_STARTED_REASON);
    const ended = await Promise.all(
      res.body.migrations.map((m) => waitForPhase(stack, m.id, ['completed', 'failed', 'cancelled'])),
    );
    expect(ended.map((m) => m.phase)).toEqual(['completed', 'completed']);
  });

  it('cancels a pending migration whose workflow never started (200, cancelled)', async () => {
    const vm = await createRunningServer(stack, { name: 'never-ran', host: 'src', memoryMb: 512 });
    const orphan = await orphanRow(vm);

    const cancel = await stack.api('POST', `/v1/migrations/${orphan.id}/cancel`);
    expect(cancel.status, JSON.stringify(cancel.body)).toBe(200);
    expect(cancel.body).toMatchObject({ id: orphan.id, phase: 'cancelled' });
    const row = await migrationOf(stack, orphan.id);
    expect(row.phase).toBe('cancelled');
    expect(row.error).toContain('cancelled by operator');

    const again = await stack.api('POST', `/v1/migrations/${orphan.id}/cancel`);
    expect(again.status).toBe(409);
    expect(again.body).toMatchObject({ error: { code: 'migration_finished' } });
  });

  it('answers concurrent requests for one guest with exactly one 202; the others are 409s naming it', async () => {
    const vm = await createRunningServer(stack, { name: 'raced', host: 'src', memoryMb: 512 });
    const answers = await Promise.all([1, 2, 3, 4].map(() => liveMigrate(stack, 'raced')));
    const statuses = answers.map((a) => a.status).sort();
    expect(statuses, JSON.stringify(answers.map((a) => a.body))).toEqual([202, 409, 409, 409]);
    const winner = answers.find((a) => a.status === 202)?.body.id ?? '';
    for (const loser of answers.filter((a) => a.status === 409)) {
      expect(loser.body.error?.code).toBe('migration_in_progress');
      expect(loser.body.error?.message).toContain(winner);
    }
    expect((await waitForPhase(stack, winner, ['completed', 'failed'])).phase).toBe('completed');
    const rows = await stack.db.db.select().from(migrations).where(eq(migrations.guestId, vm.id));
    expect(rows.map((r) => r.id)).toEqual([winner]);
  });

  it('waits for the previous run of the guest to close instead of refusing the request', async () => {
    const vm = await createRunningServer(stack, { name: 'closing', host: 'src', memoryMb: 512 });
    // A run under the guest's workflow id that no worker picks up: open until it is terminated, like a run
    // whose record is already final but which has not closed yet.
    const previous = await stack.temporal.workflow.start('liveMigrate', {
      taskQueue: `nobody-polls-${randomUUID()}`,
      workflowId: guestRunWorkflowId('live-migrate', vm),
      args: [],
    });
    const closes = new Promise((resolve) => setTimeout(resolve, 1_000)).then(() =>
      previous.terminate('the previous migration closes'),
    );
    const started = await liveMigrate(stack, 'closing');
    await closes;
    expect(started.status, JSON.stringify(started.body)).toBe(202);
    expect((await waitForPhase(stack, started.body.id, ['completed', 'failed'])).phase).toBe('completed');
  });

  it('still refuses with a 409 when the previous run does not close within the wait', async () => {
    const vm = await createRunningServer(stack, { name: 'stuck', host: 'src', memoryMb: 512 });
    const previous = await stack.temporal.workflow.start('liveMigrate', {
      taskQueue: `nobody-polls-${randomUUID()}`,
      workflowId: guestRunWorkflowId('live-migrate', vm),
      args: [],
    });
    try {
      const refused = await liveMigrate(stack, 'stuck');
      expect(refused.status).toBe(409);
      expect(refused.body.error?.message).toContain('(starting)');
      const left = await stack.db.db.select().from(migrations).where(eq(migrations.guestId, vm.id));
      expect(left).toEqual([]);
    } finally {
      await previous.terminate('test over');
    }
  });

  it('refuses a second active migration of a guest in the database itself', async () => {
    const vm = await createRunningServer(stack, { name: 'indexed', host: 'src', memoryMb: 512 });
    const first = await orphanRow(vm);
    const second = await orphanRow(vm).then(
      () => null,
      (err: Error) => err,
    );
    const causes: string[] = [];
    for (let e: unknown = second; e instanceof Error; e = e.cause) causes.push(e.message);
    expect(causes.join(' / ')).toContain('migrations_one_active_per_guest');

    // Finished migrations do not count: once the first is over, another may be recorded.
    await stack.db.db.update(migrations).set({ phase: 'failed' }).where(eq(migrations.id, first.id));
    const third = await orphanRow(vm);
    expect(third.phase).toBe('pending');
    await stack.db.db.update(migrations).set({ phase: 'cancelled' }).where(eq(migrations.id, third.id));
  });
});
