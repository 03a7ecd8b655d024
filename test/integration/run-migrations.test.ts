import { eq, inArray } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { recordRunMigrations, type RunMigrationRequest } from '../../api/pending-migration.ts';
import { NEVER_STARTED_REASON } from '../../api/unstarted-migrations.ts';
import { withGuestMigrationLock } from '../../db/guest-migration-lock.ts';
import { guests, hosts, migrations } from '../../db/schema.ts';
import { guestRunWorkflowId } from '../../domain/workflow-ids.ts';
import { startMiniStack, type MiniStack } from '../helpers/mini-stack.ts';
import { createRunningServer } from '../helpers/migrations.ts';

type Server = Awaited<ReturnType<typeof createRunningServer>>;

/** An alert batch's rows in one go: the same answers as recording each guest alone, in a handful of queries. */
describe('recordRunMigrations: a batch of run-started migrations under the guests’ locks', () => {
  let stack: MiniStack;
  const vms: Record<string, Server> = {};

  beforeAll(async () => {
    stack = await startMiniStack({ hosts: [{ name: 'src' }, { name: 'dst' }] });
    for (const name of ['a', 'b', 'gone', 'orphaned', 'busy']) {
      vms[name] = await createRunningServer(stack, { name, host: 'src', memoryMb: 256 });
    }
  });
  afterAll(async () => stack?.stop());

  const request = (name: string, runKey: string): RunMigrationRequest => ({
    guest: { id: vms[name]!.id, name },
    row: {
      kind: 'live',
      sourceHostId: vms[name]!.host.id,
      trigger: 'alert',
      options: { alertCycle: runKey },
      workflowId: `test-run-${runKey}-${name}`,
    },
  });
  const activeRow = (name: string, phase: 'pending' | 'copying') =>
    stack.db.db
      .insert(migrations)
      .values({
        kind: 'live',
        guestId: vms[name]!.id,
        sourceHostId: vms[name]!.host.id,
        trigger: 'manual',
        phase,
        workflowId: guestRunWorkflowId('live-migrate', { id: vms[name]!.id, name }),
      })
      .returning()
      .then(([row]) => row!);

  it('records the fresh ones, refuses a guest gone or busy, reaps one never started, and a retry finds its rows', async () => {
    await stack.db.db
      .update(guests)
      .set({ hostId: (await hostId('dst'))! })
      .where(eq(guests.id, vms.gone!.id));
    const orphan = await activeRow('orphaned', 'pending');
    const running = await activeRow('busy', 'copying');
    const names = ['a', 'b', 'gone', 'orphaned', 'busy'];
    const batch = names.map((name) => request(name, 'cycle-1'));

    const first = await recordRunMigrations(stack.db.db, stack.temporal, 'cycle-1', batch);
    expect(first[2]).toEqual({ refused: 'the guest is no longer on its source host' });
    expect(first[4]).toEqual({
      refused: `server 'busy' already has a running migration ${running.id}`,
    });
    const recorded = [first[0], first[1], first[3]].map(
      (answer) => (answer as { migrationId: string }).migrationId,
    );
    expect(new Set(recorded).size).toBe(3);
    const rows = await stack.db.db.select().from(migrations).where(inArray(migrations.id, recorded));
    expect(rows.map((row) => [row.guestId, row.phase, row.options.runKey, row.trigger]).sort()).toEqual(
      [vms.a!, vms.b!, vms.orphaned!].map((vm) => [vm.id, 'pending', 'cycle-1', 'alert']).sort(),
    );
    const [reaped] = await stack.db.db.select().from(migrations).where(eq(migrations.id, orphan.id));
    expect(reaped).toMatchObject({ phase: 'failed', error: NEVER_STARTED_REASON });

    const count = async () => (await stack.db.db.select({ id: migrations.id }).from(migrations)).length;
    const before = await count();
    expect(await recordRunMigrations(stack.db.db, stack.temporal, 'cycle-1', batch)).toEqual(first);
    expect(await count()).toBe(before);

    // Another run: the row of cycle-1 for 'a' has no workflow running (nothing started it here), so it is reaped
    // like any never-started one; 'busy' is still copying.
    const other = await recordRunMigrations(
      stack.db.db,
      stack.temporal,
      'cycle-2',
      ['a', 'busy'].map((name) => request(name, 'cycle-2')),
    );
    expect(other[1]).toEqual({ refused: `server 'busy' already has a running migration ${running.id}` });
    expect(other[0]).toEqual({ migrationId: expect.not.stringMatching(recorded[0]!) });
    const [replaced] = await stack.db.db.select().from(migrations).where(eq(migrations.id, recorded[0]!));
    expect(replaced).toMatchObject({ phase: 'failed', error: NEVER_STARTED_REASON });
  });

  it('waits for a guest’s lock held elsewhere, and two batches over the same guests in opposite orders both finish', async () => {
    await stack.db.db.delete(migrations);
    const order: string[] = [];
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    let locked!: () => void;
    const isLocked = new Promise<void>((resolve) => (locked = resolve));
    const holder = withGuestMigrationLock(stack.db.db, vms.b!.id, async () => {
      locked();
      await held;
      order.push('holder done');
    });
    await isLocked;
    const batch = recordRunMigrations(stack.db.db, stack.temporal, 'cycle-3', [
      request('a', 'cycle-3'),
      request('b', 'cycle-3'),
    ]).then((answers) => {
      order.push('batch done');
      return answers;
    });
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(order).toEqual([]);
    release();
    await holder;
    expect((await batch).every((answer) => 'migrationId' in answer)).toBe(true);
    expect(order).toEqual(['holder done', 'batch done']);

    await stack.db.db.delete(migrations);
    const forward = ['a', 'b', 'orphaned', 'busy'].map((name) => request(name, 'cycle-4'));
    const answers = await Promise.all([
      recordRunMigrations(stack.db.db, stack.temporal, 'cycle-4', forward),
      recordRunMigrations(stack.db.db, stack.temporal, 'cycle-4', [...forward].reverse()),
    ]);
    expect(answers[1]).toEqual([...answers[0]].reverse());
    expect(answers[0].every((answer) => 'migrationId' in answer)).toBe(true);
  });

  it('refuses a batch naming a guest twice before it locks anything', async () => {
    await expect(
      recordRunMigrations(stack.db.db, stack.temporal, 'cycle-5', [
        request('a', 'cycle-5'),
        request('a', 'cycle-5'),
      ]),
    ).rejects.toThrow(/a guest appears twice/);
  });

  async function hostId(name: string): Promise<string | undefined> {
    const [host] = await stack.db.db.select({ id: hosts.id }).from(hosts).where(eq(hosts.name, name));
    return host?.id;
  }
});
