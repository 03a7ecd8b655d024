import { inArray } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrations } from '../../db/schema.ts';
import { DEFAULT_SLOT_LIMITS } from '../../domain/slots.ts';
import { startMiniStack, type MiniStack } from '../helpers/mini-stack.ts';
import { createRunningServer, liveMigrate, waitForPhase } from '../helpers/migrations.ts';

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
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    })();

    const started = await Promise.all(
      names.map((name) => liveMigrate(stack, name, { max_bandwidth_mb: 400 })),
    );
    for (const res of started) expect(res.status, JSON.stringify(res.body)).toBe(202);
    const finished = await Promise.all(
      started.map((res) =>
        waitForPhase(stack, res.body.migrationId, ['completed', 'failed', 'cancelled'], 120_000),
      ),
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
  });
});
