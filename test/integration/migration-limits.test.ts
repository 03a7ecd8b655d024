import { randomBytes } from 'node:crypto';
import { ActivityCancellationDetails, CancelledFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { inArray } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { slotActivities } from '../../activities/slot-activities.ts';
import { migrations } from '../../db/schema.ts';
import { DEFAULT_SLOT_LIMITS, type SlotLimits } from '../../domain/slots.ts';
import { migrationSlotsWorkflowId } from '../../domain/workflow-ids.ts';
import {
  acquireSlotUpdate,
  leaveSlotQueueUpdate,
  releaseSlotSignal,
  renewSlotSignal,
  slotsQuery,
  type SlotsView,
} from '../../workflows/migration-slots-messages.ts';
import { startMiniStack, type MiniStack } from '../helpers/mini-stack.ts';
import { createRunningServer, liveMigrate, waitForPhase } from '../helpers/migrations.ts';
import { waitFor } from '../helpers/wait.ts';

/** Phases in which a migration holds its slot and moves data or the guest. */
const RUNNING_PHASES = [
  'preparing',
  'copying',
  'switching-over',
  'verifying',
  'committing',
  'cleaning',
] as const;

interface Peak {
  running: number;
  outbound: number;
  inbound: number;
  queued: number;
}

describe('parallel migration limits with a fair queue', () => {
  let stack: MiniStack;

  beforeAll(async () => {
    stack = await startMiniStack({
      hosts: ['s1', 's2', 's3', 'd1', 'd2'].map((name) => ({ name })),
    });
  });
  afterAll(async () => stack?.stop());

  it('runs 12 simultaneous requests within the cluster, outbound and inbound limits, and completes them all', async () => {
    const names = Array.from({ length: 12 }, (_, i) => `lim-${i}`);
    await Promise.all(
      names.map((name, i) => createRunningServer(stack, { name, host: `s${(i % 3) + 1}`, memoryMb: 1024 })),
    );

    const peak: Peak = { running: 0, outbound: 0, inbound: 0, queued: 0 };
    const heldWhileQueued: string[] = [];
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        const rows = await stack.db.db
          .select()
          .from(migrations)
          .where(inArray(migrations.phase, [...RUNNING_PHASES, 'queued']));
        const running = rows.filter((r) => r.phase !== 'queued');
        const perSource = new Map<string, number>();
        const perDestination = new Map<string, number>();
        for (const r of running) {
          perSource.set(r.sourceHostId, (perSource.get(r.sourceHostId) ?? 0) + 1);
          if (r.destinationHostId)
            perDestination.set(r.destinationHostId, (perDestination.get(r.destinationHostId) ?? 0) + 1);
        }
        peak.running = Math.max(peak.running, running.length);
        peak.outbound = Math.max(peak.outbound, ...perSource.values(), 0);
        peak.inbound = Math.max(peak.inbound, ...perDestination.values(), 0);
        peak.queued = Math.max(peak.queued, rows.length - running.length);
        // A destination started early (beside the slot) goes while its migration queues: the limits hold the
        // destination back too, as KubeVirt's migration controller does (kubevirt/kubevirt
        // pkg/virt-controller/watch/migration/migration.go: "Waiting to schedule target pod for vmi ... migration
        // because total running parallel migration count ... is currently at the global cluster limit", checked
        // before the target pod is created).
        for (const r of rows) {
          const queuedAt = r.phase === 'queued' ? r.timings.queued?.startedAt : undefined;
          if (queuedAt === undefined || Date.now() - queuedAt < 1_000 || !r.destinationHostId) continue;
          const destination = [...stack.agents.values()].find((a) => a.hostId === r.destinationHostId);
          const held = await destination?.driver.getGuest(r.guestId);
          const still = await stack.db.db
            .select()
            .from(migrations)
            .where(inArray(migrations.id, [r.id]));
          if (held && still[0]?.phase === 'queued')
            heldWhileQueued.push(`${r.id} on ${r.destinationHostId}: ${held.status}`);
        }
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    })();

    const started = await Promise.all(
      names.map((name) => liveMigrate(stack, name, { max_bandwidth_mb: 400 })),
    );
    for (const res of started) expect(res.status, JSON.stringify(res.body)).toBe(202);
    const finished = await Promise.all(
      started.map((res) => waitForPhase(stack, res.body.id, ['completed', 'failed', 'cancelled'], 120_000)),
    );
    sampling = false;
    await sampler;

    expect(finished.map((m) => m.phase)).toEqual(names.map(() => 'completed'));
    expect(peak.running).toBeLessThanOrEqual(DEFAULT_SLOT_LIMITS.perCluster);
    expect(peak.outbound).toBeLessThanOrEqual(DEFAULT_SLOT_LIMITS.outboundPerNode);
    expect(peak.inbound).toBeLessThanOrEqual(DEFAULT_SLOT_LIMITS.inboundPerNode);
    // The limits really were reached, and the rest waited instead of failing.
    expect(peak.queued).toBeGreaterThan(0);
    expect(peak.running).toBeGreaterThan(1);
    const queuedEvents = finished.filter((m) => m.events.some((e) => e.type === 'queued'));
    expect(queuedEvents.length).toBeGreaterThan(0);
    for (const m of queuedEvents) expect(m.events.map((e) => e.type)).toContain('slot_granted');
    expect(heldWhileQueued).toEqual([]);
  });
});

/**
 * The cluster's slots workflow driven directly (real Temporal, the real worker), so the lease rules are
 * tested apart from the migration workflow. Each test has its own cluster id, hence its own slots workflow.
 * Waiters are stand-in workflows (idle migrationSlots runs) that receive the slotGranted signal.
 */
describe('the slots workflow: leases, renewals after expiry and waiters that give up', () => {
  let stack: MiniStack;
  const started: string[] = [];
  const tight: SlotLimits = { perCluster: 1, outboundPerNode: 1, inboundPerNode: 1 };

  beforeAll(async () => {
    stack = await startMiniStack({ hosts: [{ name: 'h1' }] });
  });
  afterAll(async () => {
    for (const id of started) {
      await stack?.temporal.workflow
        .getHandle(id)
        .terminate('test over')
        .catch(() => undefined);
    }
    await stack?.stop();
  });

  const cluster = async () => {
    const clusterId = `slots-${randomBytes(4).toString('hex')}`;
    const id = migrationSlotsWorkflowId(clusterId);
    await stack.temporal.workflow.start('migrationSlots', {
      workflowId: id,
      taskQueue: stack.taskQueue,
      args: [],
    });
    started.push(id);
    const handle = stack.temporal.workflow.getHandle(id);
    /** A stand-in migration workflow to receive the grant signal. */
    const waiter = async (migrationId: string, source: string, destination: string) => {
      const workflowId = `${clusterId}-waiter-${migrationId}`;
      await stack.temporal.workflow.start('migrationSlots', {
        workflowId,
        taskQueue: stack.taskQueue,
        args: [],
      });
      started.push(workflowId);
      return { migrationId, workflowId, sourceHostId: source, destinationHostId: destination };
    };
    const acquire = (request: Awaited<ReturnType<typeof waiter>>, leaseMs: number, limits = tight) =>
      handle.executeUpdate(acquireSlotUpdate, { args: [{ ...request, limits, leaseMs }] });
    const view = () => handle.query(slotsQuery);
    const ids = (list: { migrationId: string }[] | undefined) => (list ?? []).map((h) => h.migrationId);
    const until = (what: string, probe: (v: SlotsView) => boolean, timeoutMs = 15_000) =>
      waitFor(what, async () => ((v) => (probe(v) ? v : null))(await view()), { timeoutMs, intervalMs: 100 });
    return { id, handle, waiter, acquire, view, ids, until };
  };

  it('counts a holder whose lease ran out while it still ran, once it renews, and grants nobody beyond the limits', async () => {
    const { id, handle, waiter, acquire, ids, until } = await cluster();
    const a = await waiter('a', 's1', 'd1');
    const b = await waiter('b', 's2', 'd2');
    const c = await waiter('c', 's3', 'd3');
    expect(await acquire(a, 1_500)).toEqual({ granted: true });
    expect(await acquire(b, 60_000)).toEqual({ granted: false, position: 1 });
    expect(await acquire(c, 60_000)).toEqual({ granted: false, position: 2 });

    // a stops renewing (its worker died, say): its lease runs out and b gets the slot.
    await until('a to expire and b to be granted', (v) => ids(v.holders).join() === 'b');

    // a was running all along: its lease keeper, retried on another worker, renews.
    const env = new MockActivityEnvironment(
      { taskQueue: stack.taskQueue, workflowExecution: { workflowId: a.workflowId, runId: 'r' } },
      { client: stack.temporal },
    );
    const keeping = env.run(slotActivities({ temporal: stack.temporal }).keepSlotLease, {
      slotsWorkflowId: id,
      migrationId: 'a',
      leaseMs: 1_500,
      renewIntervalMs: 300,
      sourceHostId: a.sourceHostId,
      destinationHostId: a.destinationHostId,
    });
    try {
      const over = await until('a to be counted again', (v) => ids(v.holders).includes('a'));
      expect(ids(over.holders).sort()).toEqual(['a', 'b']);
      expect(ids(over.queue)).toEqual(['c']);
      expect(over.reinstated).toEqual([
        expect.objectContaining({ migrationId: 'a', from: 'expired', exceeds: ['cluster'] }),
      ]);
      expect(ids(over.expired)).toEqual(['a']);

      // b finishes: a alone still fills the cluster, so c keeps waiting.
      await handle.signal(releaseSlotSignal, { migrationId: 'b' });
      const atLimit = await until('b to be gone', (v) => !ids(v.holders).includes('b'));
      expect(ids(atLimit.holders)).toEqual(['a']);
      expect(ids(atLimit.queue)).toEqual(['c']);
      // Renewals keep a's 1.5 s lease alive well past it.
      await new Promise((resolve) => setTimeout(resolve, 2_500));
      const still = await until('a to hold on', () => true);
      expect(ids(still.holders)).toEqual(['a']);
      expect(ids(still.queue)).toEqual(['c']);
    } finally {
      env.cancel('CANCELLED', new ActivityCancellationDetails({ cancelRequested: true }));
    }
    // Cancelled by its workflow, the lease keeper ends cleanly.
    await expect(keeping).resolves.toBeUndefined();

    // a finishes: now c starts.
    await handle.signal(releaseSlotSignal, { migrationId: 'a' });
    const after = await until('c to be granted', (v) => ids(v.holders).join() === 'c');
    expect(after.queue).toEqual([]);

    // A renewal from a that crossed its release is stale: it must not take a slot back.
    await handle.signal(renewSlotSignal, { ...a, leaseMs: 60_000 });
    await handle.signal(releaseSlotSignal, { migrationId: 'nobody' }); // a marker: processed after the renewal
    const final = await until('the marker release', (v) => (v.released ?? []).includes('nobody'));
    expect(ids(final.holders)).toEqual(['c']);
    expect(final.reinstated).toHaveLength(1);
  });

  it('drops a waiter that gives up: by release, or by leaving the queue and hearing its position', async () => {
    const { handle, waiter, acquire, ids, until } = await cluster();
    const x = await waiter('x', 's1', 'd1');
    const y = await waiter('y', 's2', 'd2');
    const z = await waiter('z', 's3', 'd3');
    const w = await waiter('w', 's4', 'd4');
    expect(await acquire(x, 60_000)).toEqual({ granted: true });
    expect(await acquire(y, 60_000)).toEqual({ granted: false, position: 1 });
    expect(await acquire(z, 60_000)).toEqual({ granted: false, position: 2 });
    expect(await acquire(w, 60_000)).toEqual({ granted: false, position: 3 });

    // y's queue timeout ran out; its workflow releases on the way out.
    await handle.signal(releaseSlotSignal, { migrationId: 'y' });
    const withoutY = await until('y to leave the queue', (v) => !ids(v.queue).includes('y'));
    expect(ids(withoutY.queue)).toEqual(['z', 'w']);
    expect(ids(withoutY.holders)).toEqual(['x']);

    // w gives up too, through the update: it learns where it stood.
    expect(await handle.executeUpdate(leaveSlotQueueUpdate, { args: [{ migrationId: 'w' }] })).toEqual({
      left: true,
      position: 2,
    });
    // Neither waiting nor holding any more; the holder is told it holds.
    expect(await handle.executeUpdate(leaveSlotQueueUpdate, { args: [{ migrationId: 'w' }] })).toEqual({
      left: false,
      holding: false,
    });
    expect(await handle.executeUpdate(leaveSlotQueueUpdate, { args: [{ migrationId: 'x' }] })).toEqual({
      left: false,
      holding: true,
    });

    // x finishes: z, the only one still waiting, starts; y and w never do.
    await handle.signal(releaseSlotSignal, { migrationId: 'x' });
    const after = await until('z to be granted', (v) => ids(v.holders).join() === 'z');
    expect(after.queue).toEqual([]);
  });

  it('the lease keeper rethrows a cancellation its workflow did not ask for, so a retry goes on renewing', async () => {
    const { id } = await cluster();
    const env = new MockActivityEnvironment({ taskQueue: stack.taskQueue }, { client: stack.temporal });
    const heartbeats: unknown[] = [];
    env.on('heartbeat', (d: unknown) => heartbeats.push(structuredClone(d)));
    const keeping = env.run(slotActivities({ temporal: stack.temporal }).keepSlotLease, {
      slotsWorkflowId: id,
      migrationId: 'q',
      leaseMs: 60_000,
      renewIntervalMs: 200,
    });
    await waitFor('two heartbeats', async () => heartbeats.length >= 2);
    expect(heartbeats[0]).toMatchObject({ renewals: 1, failedRenewals: 0 });
    env.cancel('TIMED_OUT', new ActivityCancellationDetails({ timedOut: true }));
    await expect(keeping).rejects.toBeInstanceOf(CancelledFailure);
  });
});
