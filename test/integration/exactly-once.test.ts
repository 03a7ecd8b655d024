import { guestRunWorkflowId } from '../../domain/workflow-ids.ts';
import { setTimeout as sleep } from 'node:timers/promises';
import { ApplicationFailure, CancelledFailure, Context } from '@temporalio/activity';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Activities } from '../../activities/index.ts';
import { startMiniStack, type MiniStack } from '../helpers/mini-stack.ts';
import {
  agentGuest,
  createRunningServer,
  liveMigrate,
  migrationOf,
  reservationCount,
  waitForMigrationEnd,
  waitForPhase,
  type ServerBody,
} from '../helpers/migrations.ts';
import { waitFor } from '../helpers/wait.ts';

/**
 * The exactly-once invariant on the paths where one fault used to run a guest twice, lose it, or leave the
 * records naming the wrong host. Each fault is injected by wrapping one activity of a real worker; the
 * agents (sim driver), Temporal and PostgreSQL are real.
 */
describe('a guest runs exactly once whatever fails', () => {
  let stack: MiniStack;

  beforeAll(async () => {
    stack = await startMiniStack({ hosts: [{ name: 'src' }, { name: 'dst' }] });
  });
  afterAll(async () => stack?.stop());
  afterEach(async () => {
    await stack.stopWorker();
    await stack.startWorker();
  });

  const withActivities = async (wrap: (activities: Activities) => Activities) => {
    await stack.stopWorker();
    await stack.startWorker(wrap);
  };

  const sourceMigrationStatus = async (guestId: string): Promise<string> => {
    const res = await fetch(`${stack.agents.get('src')?.url}/v1/guests/${guestId}/migration`, {
      headers: { authorization: `Bearer ${stack.agentCredential('src')}` },
    });
    return ((await res.json()) as { status: string }).status;
  };

  /** Holds a monitor until QEMU (the sim) reports the copy completed, heartbeating so a cancel reaches it. */
  const untilSourceCompleted = async (guestId: string) => {
    const ctx = Context.current();
    while ((await sourceMigrationStatus(guestId)) !== 'completed') {
      ctx.heartbeat();
      await ctx.sleep(50);
    }
  };

  const expectRunsOnlyOn = async (server: string, guestId: string, host: 'src' | 'dst') => {
    const other = host === 'src' ? 'dst' : 'src';
    expect((await agentGuest(stack, host, guestId)).body.status).toBe('running');
    const elsewhere = await agentGuest(stack, other, guestId);
    if (elsewhere.status !== 404) expect(elsewhere.body.status).not.toBe('running');
    expect((await stack.api<ServerBody>('GET', `/v1/servers/${server}`)).body).toMatchObject({
      status: 'running',
      host: { name: host },
    });
    expect(await reservationCount(stack)).toBe(0);
  };

  it('rolls forward when a policy abort lands as QEMU completes (it used to destroy the only copy)', async () => {
    await withActivities((activities) => ({
      ...activities,
      async monitorMigration(input) {
        await untilSourceCompleted(input.guestId);
        throw ApplicationFailure.nonRetryable(
          'convergence policy gave up just as QEMU completed',
          'Injected',
        );
      },
    }));
    const vm = await createRunningServer(stack, { name: 'late-abort', host: 'src', memoryMb: 1024 });
    const started = await liveMigrate(stack, 'late-abort', { prefer_host: 'dst' });
    expect(started.status).toBe(202);
    const done = await waitForPhase(stack, started.body.id, ['completed', 'failed', 'cancelled']);
    expect(done.phase, done.error ?? '').toBe('completed');
    const types = done.events.map((e) => e.type);
    expect(types).toEqual(expect.arrayContaining(['recovery', 'rolled_forward', 'completed']));
    expect(done.events.find((e) => e.type === 'recovery')?.data).toMatchObject({ decision: 'roll-forward' });
    await expectRunsOnlyOn('late-abort', vm.id, 'dst');
    expect((await agentGuest(stack, 'src', vm.id)).status).toBe(404);
  });

  it('rolls forward when a cancel lands as QEMU completes, and says the cancel was refused', async () => {
    await withActivities((activities) => ({
      ...activities,
      async monitorMigration(input) {
        await untilSourceCompleted(input.guestId);
        const ctx = Context.current();
        await stack.api('POST', `/v1/migrations/${input.migrationId}/cancel`);
        for (;;) {
          ctx.heartbeat();
          await ctx.sleep(100);
          if (ctx.cancellationSignal.aborted) throw new CancelledFailure('cancelled');
        }
      },
    }));
    const vm = await createRunningServer(stack, { name: 'late-cancel', host: 'src', memoryMb: 1024 });
    const started = await liveMigrate(stack, 'late-cancel', { prefer_host: 'dst' });
    const done = await waitForPhase(stack, started.body.id, ['completed', 'failed', 'cancelled']);
    expect(done.phase, done.error ?? '').toBe('completed');
    expect(done.events.map((e) => e.type)).toEqual(
      expect.arrayContaining(['cancel_refused', 'rolled_forward', 'completed']),
    );
    await expectRunsOnlyOn('late-cancel', vm.id, 'dst');
  });

  it('stops a destination found dead after a pre-copy switch-over before the source resumes', async () => {
    const destinationAtResume: (string | number)[] = [];
    await withActivities((activities) => ({
      ...activities,
      async verifyGuestAlive() {
        return { alive: false, firstCounter: 7, lastCounter: 7, status: 'running' };
      },
      async resumeSourceGuest(input) {
        const dest = await agentGuest(stack, 'dst', input.guestId);
        destinationAtResume.push(dest.status === 404 ? 404 : dest.body.status);
        return activities.resumeSourceGuest(input);
      },
    }));
    const vm = await createRunningServer(stack, { name: 'dead-dest', host: 'src', memoryMb: 1024 });
    const started = await liveMigrate(stack, 'dead-dest', { prefer_host: 'dst' });
    const done = await waitForPhase(stack, started.body.id, ['completed', 'failed', 'cancelled']);
    expect(done.phase).toBe('failed');
    expect(done.error).toContain('not alive');
    // Never two running copies: the destination was gone before the source ran again.
    expect(destinationAtResume).toEqual([404]);
    await expectRunsOnlyOn('dead-dest', vm.id, 'src');
    expect((await agentGuest(stack, 'dst', vm.id)).status).toBe(404);
  });

  it('keeps a dead destination paused, never running, when keep_dest_guest_on_failed asks for it', async () => {
    await withActivities((activities) => ({
      ...activities,
      async verifyGuestAlive() {
        return { alive: false, firstCounter: 7, lastCounter: 7, status: 'running' };
      },
    }));
    const vm = await createRunningServer(stack, { name: 'kept-dest', host: 'src', memoryMb: 1024 });
    const started = await liveMigrate(stack, 'kept-dest', {
      prefer_host: 'dst',
      keep_dest_guest_on_failed: true,
    });
    const done = await waitForPhase(stack, started.body.id, ['completed', 'failed', 'cancelled']);
    expect(done.phase).toBe('failed');
    expect(done.events.map((e) => e.type)).toContain('dest_guest_kept');
    expect((await agentGuest(stack, 'dst', vm.id)).body.status).toBe('paused');
    await expectRunsOnlyOn('kept-dest', vm.id, 'src');
  });

  it('retries the commit until PostgreSQL answers, saying what it waits for (it used to strand the guest)', async () => {
    let failUntil = 0;
    await withActivities((activities) => ({
      ...activities,
      async commitMigration(input) {
        if (failUntil === 0) failUntil = Date.now() + 40_000;
        if (Date.now() < failUntil) throw new Error('connect ECONNREFUSED 127.0.0.1:5432 (injected)');
        return activities.commitMigration(input);
      },
    }));
    const vm = await createRunningServer(stack, { name: 'db-down', host: 'src', memoryMb: 1024 });
    const started = await liveMigrate(stack, 'db-down', { prefer_host: 'dst' });
    const done = await waitForMigrationEnd(stack, started.body.id, 120_000);
    expect(done.phase, done.error ?? '').toBe('completed');
    const waiting = done.events.filter((e) => e.type === 'waiting');
    expect(waiting.length).toBeGreaterThan(0);
    expect(waiting[0]?.message).toContain('to record the guest on its new host');
    await expectRunsOnlyOn('db-down', vm.id, 'dst');
  }, 150_000);

  // The prepare runs as a local activity inside the workflow task that leads to `migrate`, so the cancel is
  // delivered once that task ends: after the copy started, which the cancel then rolls back. The copy is kept
  // slow here so that the cancel finds it running, as it would find a real guest's.
  it('waits for a cancelled preparation to end before cleaning the destination (no orphan incoming guest)', async () => {
    await withActivities((activities) => ({
      ...activities,
      async prepareDestination(input) {
        await stack.api('POST', `/v1/migrations/${input.migrationId}/cancel`);
        await sleep(2_000);
        return activities.prepareDestination(input);
      },
    }));
    const vm = await createRunningServer(stack, { name: 'late-prepare', host: 'src', memoryMb: 8192 });
    const started = await liveMigrate(stack, 'late-prepare', { prefer_host: 'dst', max_bandwidth_mb: 50 });
    const done = await waitForPhase(stack, started.body.id, ['completed', 'failed', 'cancelled']);
    expect(done.phase).toBe('cancelled');
    await sleep(1_000);
    expect((await agentGuest(stack, 'dst', vm.id)).status).toBe(404);
    await expectRunsOnlyOn('late-prepare', vm.id, 'src');
  });

  it('cancels the QMP migration before it writes anything to PostgreSQL on a rollback', async () => {
    const sourceAtRollingBack: string[] = [];
    await withActivities((activities) => ({
      ...activities,
      async setMigrationPhase(input) {
        if (input.phase === 'rolling-back') {
          const guestId = (await migrationOf(stack, input.migrationId)) as unknown as {
            guest: { id: string };
          };
          sourceAtRollingBack.push(await sourceMigrationStatus(guestId.guest.id));
        }
        return activities.setMigrationPhase(input);
      },
    }));
    const vm = await createRunningServer(stack, { name: 'db-first', host: 'src', memoryMb: 8192 });
    const started = await liveMigrate(stack, 'db-first', { prefer_host: 'dst', max_bandwidth_mb: 50 });
    const id = started.body.id;
    await waitFor(
      'bytes moving',
      async () => ((await migrationOf(stack, id)).progress?.transferredBytes ?? 0) > 0,
    );
    await stack.api('POST', `/v1/migrations/${id}/cancel`);
    const done = await waitForPhase(stack, id, ['completed', 'failed', 'cancelled']);
    expect(done.phase).toBe('cancelled');
    // A database that fails this write can no longer keep QEMU copying: the cancel has landed already.
    expect(sourceAtRollingBack[0]).toBe('cancelled');
    await expectRunsOnlyOn('db-first', vm.id, 'src');
  });

  it('does not grow its history while the copy runs (progress travels outside it)', async () => {
    const vm = await createRunningServer(stack, { name: 'long-copy', host: 'src', memoryMb: 4096 });
    const started = await liveMigrate(stack, 'long-copy', { prefer_host: 'dst', max_bandwidth_mb: 100 });
    const id = started.body.id;
    await waitFor(
      'bytes moving',
      async () => ((await migrationOf(stack, id)).progress?.transferredBytes ?? 0) > 0,
    );
    const handle = stack.temporal.workflow.getHandle(guestRunWorkflowId('live-migrate', vm));
    const eventsAt = async () => (await handle.fetchHistory()).events?.length ?? 0;
    const first = await eventsAt();
    const progressBefore = (await migrationOf(stack, id)).progress?.transferredBytes ?? 0;
    await sleep(10_000);
    const second = await eventsAt();
    const progressAfter = (await migrationOf(stack, id)).progress?.transferredBytes ?? 0;
    expect(progressAfter).toBeGreaterThan(progressBefore);
    // 10 s of copying at a 0.5 s poll, 1 s progress saves and lease renewals: not one event more.
    expect(second).toBe(first);
    await stack.api('POST', `/v1/migrations/${id}/cancel`);
    const done = await waitForPhase(stack, id, ['completed', 'failed', 'cancelled']);
    expect(done.phase).toBe('cancelled');
    const total = await eventsAt();
    expect(total).toBeLessThan(200);
  });
});
