import { describe, expect, it } from 'vitest';
import {
  alertCycleEvents,
  batchStartEvents,
  migratingEvent,
  skippedEvent,
} from '../../domain/alert-events.ts';
import { planAlertMoves } from '../../domain/alert-planner.ts';
import { parseAlertSnapshot, alertPlanDocument } from '../../domain/alert-snapshot.ts';

const rule = {
  id: 'r1',
  name: 'test-cpu',
  metric: 'cpu.usage_active' as const,
  threshold: 60,
  periodS: 120,
  hostsWithoutData: ['dark-before'],
};

describe("alert cycle events in the seed's formats", () => {
  const plan = planAlertMoves({
    now: '2026-12-01T00:00:00Z',
    rule: { metric: 'cpu.usage_active', threshold: 60, periodS: 120, margin: 0 },
    hosts: [
      { id: 'h66', name: 'test-66-onecloud02', cpus: 40, memoryBytes: 2 ** 40, current: 70 },
      { id: 'h69', name: 'test-69-onecloud01', cpus: 40, memoryBytes: 2 ** 40, current: 55.313408 },
      { id: 'dark', name: 'dark', cpus: 40, memoryBytes: 2 ** 40, current: null },
    ],
    guests: [
      {
        id: 'g1',
        name: 'cpu-test-vm',
        hostId: 'h66',
        vcpus: 24,
        memoryMb: 1024,
        usage: 99.46995,
        history: [],
        lastMigratedAt: null,
      },
    ],
  });
  const hosts = new Map([
    ['h66', { id: 'h66', name: 'test-66-onecloud02' }],
    ['h69', { id: 'h69', name: 'test-69-onecloud01' }],
    ['dark', { id: 'dark', name: 'dark' }],
    ['dark-before', { id: 'dark-before', name: 'dark-before' }],
  ]);
  const guests = new Map([
    ['g1', { id: 'g1', name: 'cpu-test-vm', hostId: 'h66', vcpus: 24, memoryMb: 1024 }],
  ]);
  const { events, hostsWithoutData, cyclePlan } = alertCycleEvents({
    rule,
    plan,
    hosts,
    guests,
    cycleKey: 'c1',
  });

  it('records find_result_fail as Cloudpods does, and no-data once per change', () => {
    expect(cyclePlan.moves).toEqual([]);
    expect(events.map((e) => e.type)).toEqual(['no_data', 'data_back', 'find_result_fail']);
    expect(events[2]!.message).toBe(
      'find result to migrate: not found target for guest cpu-test-vm: [host:test-69-onecloud01:current(55.313408) + guest:cpu-test-vm:score(59.681970) >= threshold(60.000000)]',
    );
    expect(hostsWithoutData).toEqual(['dark']);
    expect(new Set(events.map((e) => e.dedupeKey)).size).toBe(events.length);
    const again = alertCycleEvents({
      rule: { ...rule, hostsWithoutData },
      plan,
      hosts,
      guests,
      cycleKey: 'c2',
    });
    expect(again.events.map((e) => e.type)).toEqual(['find_result_fail']);
  });

  it("writes the migrating note with the seed's keys", () => {
    const event = migratingEvent(
      {
        guestId: 'a3107d1f',
        guestName: 'aisenzhe',
        fromHostId: '733b10fa',
        fromHostName: 'a15',
        toHostId: '6fc10297',
        toHostName: 'test-66-onecloud02',
        vcpus: 8,
        memoryMb: 8192,
        score: 10.769393333333335,
        targetScore: 10.769393333333335,
        targetCurrent: 22.65071999099409,
      },
      'm1',
      'c1',
    );
    expect(JSON.parse(event.message)).toEqual({
      guest: {
        host: 'a15',
        host_id: '733b10fa',
        id: 'a3107d1f',
        name: 'aisenzhe',
        score: 10.769393333333335,
        vcpu_count: 8,
        vmem_size: 8192,
      },
      target_host: { id: '6fc10297', name: 'test-66-onecloud02', score: 22.65071999099409 },
    });
    expect(skippedEvent('rule other (alert-cycle-other-1)', 'c1', 2).message).toContain('rule other');
  });

  it('starts a batch with migrating for each recorded move and migrate_fail for each refused, in order', () => {
    const move = (guest: string) => ({
      guestId: guest,
      guestName: `vm-${guest}`,
      fromHostId: 'h1',
      fromHostName: 'host-1',
      toHostId: 'h2',
      toHostName: 'host-2',
      vcpus: 2,
      memoryMb: 2048,
      score: 5,
      targetScore: 5,
      targetCurrent: 20,
    });
    const started = batchStartEvents(
      [move('g1'), move('g2')],
      [{ migrationId: 'm1' }, { refused: 'the guest is no longer on its source host' }],
      'c1',
    );
    expect(started.map((e) => [e.type, e.dedupeKey])).toEqual([
      ['migrating', 'c1:migrating:g1'],
      ['migrate_fail', 'c1:migrate_fail:g2'],
    ]);
    expect(started[1]!.message).toBe(
      'migrating vm-g2 from host-1 to host-2 failed: the guest is no longer on its source host',
    );
  });
});

describe('snapshot documents', () => {
  it('round-trips a snapshot into a plan document with ids', () => {
    const parsed = parseAlertSnapshot({
      now: '2026-12-01T00:00:00Z',
      rule: { metric: 'cpu.usage_active', threshold: 60, period_s: 120 },
      hosts: [
        { id: 'h1', name: 'host-1', cpus: 40, memory_bytes: 2 ** 38, current: 70 },
        { id: 'h2', name: 'host-2', cpus: 40, memory_bytes: 2 ** 38, current: 20 },
      ],
      guests: [
        {
          id: 'g1',
          name: 'vm1',
          host_id: 'h1',
          vcpus: 8,
          memory_mb: 8192,
          usage: 90,
          history: [88, 91],
          last_migrated_at: null,
        },
      ],
    });
    expect(parsed.ok).toBe(true);
    if (!parsed.ok) return;
    expect(alertPlanDocument(planAlertMoves(parsed.input))).toEqual({
      moves: [{ guest: 'g1', from: 'h1', to: 'h2', score: 18 }],
      unplaced: [],
      host_after: { h1: 52, h2: 38 },
    });
  });

  it("passes a host's history to the planner, and leaves it absent when the snapshot has none", () => {
    const snapshot = (history?: number[]) =>
      parseAlertSnapshot({
        now: '2026-12-01T00:00:00Z',
        rule: { metric: 'cpu.usage_active', threshold: 60, period_s: 120 },
        hosts: [
          { id: 'h1', name: 'h', cpus: 4, memory_bytes: 1, current: 50, ...(history ? { history } : {}) },
        ],
        guests: [],
      });
    const withHistory = snapshot([40, 45]);
    const without = snapshot();
    expect(withHistory.ok && withHistory.input.hosts[0]!.history).toEqual([40, 45]);
    expect(without.ok && 'history' in without.input.hosts[0]!).toBe(false);
  });

  it('names every problem by its path', () => {
    const parsed = parseAlertSnapshot({
      now: 'yesterday',
      rule: { metric: 'disk', threshold: 1, period_s: 60 },
      hosts: [{ id: 'h1', name: 'h', cpus: 0, memory_bytes: 1, current: null, history: [1, 'high'] }],
      guests: [],
    });
    expect(parsed.ok).toBe(false);
    if (parsed.ok) return;
    expect(parsed.errors.map((e) => e.split(':')[0])).toEqual([
      'now',
      'rule.metric',
      'hosts[0].cpus',
      'hosts[0].history[1]',
    ]);
    const orphan = parseAlertSnapshot({
      now: '2026-12-01T00:00:00Z',
      rule: { metric: 'mem.available', threshold: 1, period_s: 60 },
      hosts: [],
      guests: [{ id: 'g', name: 'g', host_id: 'nowhere', vcpus: 1, memory_mb: 1, usage: null }],
    });
    expect(orphan).toEqual({ ok: false, errors: ["guests[0].host_id: no host has id 'nowhere'"] });
  });
});
