import { describe, expect, it } from 'vitest';
import {
  advance,
  projectedCompletionMs,
  type SimMigrationParams,
  type SimWorkload,
  startState,
  statusFigures,
  switchToPostCopy,
  workloadOf,
} from '../../../agent/drivers/sim-model.ts';
import { defaultSimProfile, simLinkFact } from '../../../agent/drivers/sim.ts';

const MIB = 1024 * 1024;

function params(overrides: Partial<SimMigrationParams> = {}): SimMigrationParams {
  return {
    bandwidthBytesPerSec: 100 * MIB,
    downtimeLimitMs: 300,
    autoConverge: false,
    throttleInitialPercent: 20,
    throttleIncrementPercent: 10,
    ...overrides,
  };
}

const idle: SimWorkload = workloadOf({ memoryMb: 1024, dirtyRateMibs: 0, fillMb: 0 });
const busy: SimWorkload = workloadOf({ memoryMb: 1024, dirtyRateMibs: 200, fillMb: 256 });

describe('sim pre-copy model', () => {
  it('derives the working set as the test guest does', () => {
    expect(workloadOf({ memoryMb: 512, dirtyRateMibs: 5, fillMb: 0 }).workingSetBytes).toBe(32 * MIB);
    expect(workloadOf({ memoryMb: 512, dirtyRateMibs: 5, fillMb: 100 }).workingSetBytes).toBe(100 * MIB);
    expect(workloadOf({ memoryMb: 64, dirtyRateMibs: 5, fillMb: 100 }).workingSetBytes).toBe(64 * MIB);
    expect(idle.workingSetBytes).toBe(0);
  });

  it('sends all memory in the first pass and completes an idle guest right after it', () => {
    const halfway = advance(startState(idle), idle, params(), 5_000);
    expect(halfway.phase).toBe('active');
    expect(statusFigures(halfway, idle, params()).transferredBytes).toBe(500 * MIB);
    expect(halfway.passRemainingBytes).toBe(524 * MIB);

    const done = advance(startState(idle), idle, params(), 20_000);
    expect(done.phase).toBe('completed');
    expect(done.pass).toBe(1);
    expect(done.transferredBytes).toBe(1024 * MIB);
    expect(done.switchoverAtMs).toBeCloseTo(10_240, 6);
    expect(done.downtimeMs).toBe(1);
    expect(done.elapsedMs).toBeCloseTo(10_241, 6);
  });

  it('converges in later passes when the guest dirties slower than the bandwidth', () => {
    const workload = workloadOf({ memoryMb: 1024, dirtyRateMibs: 50, fillMb: 512 });
    const done = advance(startState(workload), workload, params(), 60_000);
    expect(done.phase).toBe('completed');
    expect(done.pass).toBeGreaterThan(2);
    expect(done.downtimeMs!).toBeLessThanOrEqual(300);
    expect(done.transferredBytes).toBeGreaterThan(1024 * MIB);
  });

  it('never converges when the guest dirties faster than the bandwidth', () => {
    const state = advance(startState(busy), busy, params(), 120_000);
    expect(state.phase).toBe('active');
    expect(state.pass).toBeGreaterThan(10);
    const figures = statusFigures(state, busy, params());
    expect(figures.remainingBytes).toBeLessThanOrEqual(256 * MIB);
    expect(figures.expectedDowntimeMs!).toBeGreaterThan(300);
    expect(figures.dirtyPagesRate).toBe((200 * MIB) / 4096);
    expect(projectedCompletionMs(state, busy, params(), 600_000)).toBeNull();
  });

  it('completes once the downtime limit allows what each pass leaves', () => {
    const stuck = advance(startState(busy), busy, params(), 30_000);
    const relaxed = params({ downtimeLimitMs: 3_000 });
    const at = projectedCompletionMs(stuck, busy, relaxed, 60_000);
    expect(at).not.toBeNull();
    const done = advance(stuck, busy, relaxed, at!);
    expect(done.phase).toBe('completed');
    expect(done.downtimeMs!).toBeLessThanOrEqual(3_000);
  });

  it('throttles the guest step by step with auto-converge until it converges', () => {
    const ac = params({ autoConverge: true });
    const state = advance(startState(busy), busy, ac, 600_000);
    expect(state.phase).toBe('completed');
    expect(state.throttlePercent).toBeGreaterThanOrEqual(20);
    const running = advance(startState(busy), busy, ac, 15_000);
    expect(statusFigures(running, busy, ac).cpuThrottlePercentage).toBeGreaterThan(0);
  });

  it('throttles from the end of the second pass, step by step up to max-cpu-throttle', () => {
    const ac = params({
      autoConverge: true,
      throttleInitialPercent: 30,
      throttleIncrementPercent: 15,
      throttleMaxPercent: 60,
    });
    const throttleAtPass = new Map<number, number>();
    let state = startState(busy);
    for (let t = 0; t <= 600_000 && state.phase !== 'completed'; t += 50) {
      state = advance(state, busy, ac, t);
      if (!throttleAtPass.has(state.pass)) throttleAtPass.set(state.pass, state.throttlePercent);
    }
    // Pass n starts with the throttle set at the end of pass n-1.
    expect(throttleAtPass.get(1)).toBe(0);
    expect(throttleAtPass.get(2)).toBe(0);
    expect(throttleAtPass.get(3)).toBe(30);
    expect(throttleAtPass.get(4)).toBe(45);
    expect(Math.max(...throttleAtPass.values())).toBe(60);
    const throttled = advance(startState(busy), busy, ac, 10_240 + 2_560 + 100);
    expect(throttled.throttlePercent).toBe(30);
    const figures = statusFigures(throttled, busy, ac);
    expect(figures.cpuThrottlePercentage).toBe(30);
    expect(figures.dirtyPagesRate).toBe(Math.round((200 * MIB * 0.7) / 4096));
  });

  it('copies the local disks first, at the bandwidth, then the RAM', () => {
    const start = startState(idle, 200 * MIB);
    expect(start.phase).toBe('setup');
    const copying = advance(start, idle, params(), 1_000);
    const during = statusFigures(copying, idle, params());
    expect(copying.phase).toBe('setup');
    expect(during).toMatchObject({
      diskTransferredBytes: 100 * MIB,
      diskTotalBytes: 200 * MIB,
      diskRemainingBytes: 100 * MIB,
      diskReady: false,
      transferredBytes: 0,
      dirtySyncCount: 0,
    });
    const ram = advance(copying, idle, params(), 2_500);
    expect(ram.phase).toBe('active');
    expect(statusFigures(ram, idle, params())).toMatchObject({
      diskTransferredBytes: 200 * MIB,
      diskRemainingBytes: 0,
      diskReady: true,
      transferredBytes: 50 * MIB,
    });
    const done = advance(start, idle, params(), 20_000);
    expect(done.phase).toBe('completed');
    expect(done.switchoverAtMs).toBeCloseTo(2_000 + 10_240, 6);
    expect(statusFigures(startState(idle), idle, params()).diskReady).toBe(true);
  });

  it('drains the rest at the bandwidth after post-copy, whatever the dirty rate', () => {
    const stuck = advance(startState(busy), busy, params(), 30_000);
    const switched = switchToPostCopy(stuck, busy);
    expect(switched.phase).toBe('postcopy-active');
    expect(switched.switchoverAtMs).toBe(30_000);
    const left = switched.passRemainingBytes;
    expect(left).toBeLessThanOrEqual(busy.memoryBytes);
    const done = advance(switched, busy, params(), 30_000 + (left / (100 * MIB)) * 1000 + 1);
    expect(done.phase).toBe('completed');
    expect(statusFigures(done, busy, params()).downtimeMs).toBe(2);
    expect(switchToPostCopy(done, busy)).toBe(done);
  });

  it('keeps post-copy within the bandwidth cap, second by second, and follows a changed cap', () => {
    const cap = 30 * MIB;
    const capped = params({ bandwidthBytesPerSec: cap });
    let state = switchToPostCopy(advance(startState(busy), busy, capped, 3_000), busy);
    expect(state.phase).toBe('postcopy-active');
    expect(state.passRemainingBytes).toBeGreaterThan(10 * cap);
    for (let second = 1; second <= 5; second++) {
      const before = state.transferredBytes;
      const halfway = advance(state, busy, capped, state.elapsedMs + 500);
      expect(halfway.transferredBytes - before).toBeLessThanOrEqual(cap / 2 + 1);
      state = advance(halfway, busy, capped, state.elapsedMs + 1_000);
      expect(state.transferredBytes - before).toBeLessThanOrEqual(cap + 1);
      expect(state.transferredBytes - before).toBeGreaterThanOrEqual(cap - 1);
    }
    // A lower cap set during post-copy (setMigrationParameters) slows the drain at once.
    const before = state.transferredBytes;
    const slower = advance(state, busy, params({ bandwidthBytesPerSec: 10 * MIB }), state.elapsedMs + 1_000);
    expect(slower.transferredBytes - before).toBeCloseTo(10 * MIB, 0);
  });

  it('reports its link in the facts, in whole Mbit/s, left out when not a sensible speed', () => {
    expect(simLinkFact(defaultSimProfile.linkBytesPerSec)).toEqual({ migrationLinkMbps: 10_000 });
    expect(simLinkFact(16 * MIB)).toEqual({ migrationLinkMbps: 134 });
    expect(simLinkFact(1_000)).toEqual({});
    expect(simLinkFact(Infinity)).toEqual({});
  });

  it('gives the same answer advanced in small steps or at once', () => {
    const workload = workloadOf({ memoryMb: 2048, dirtyRateMibs: 80, fillMb: 300 });
    let stepwise = startState(workload);
    for (let t = 0; t <= 90_000; t += 137) stepwise = advance(stepwise, workload, params(), t);
    stepwise = advance(stepwise, workload, params(), 90_000);
    const once = advance(startState(workload), workload, params(), 90_000);
    expect(stepwise.phase).toBe(once.phase);
    expect(stepwise.pass).toBe(once.pass);
    expect(stepwise.transferredBytes).toBeCloseTo(once.transferredBytes, -3);
  });

  it('is cheap enough for thousands of guests', () => {
    const started = performance.now();
    for (let i = 0; i < 2_000; i++) advance(startState(busy), busy, params(), 60_000);
    expect(performance.now() - started).toBeLessThan(2_000);
  });
});
