import { describe, expect, it } from 'vitest';
import { cloudpodsDefaultPolicy, cloudpodsPauseAfterSeconds } from '../../../domain/convergence/cloudpods.ts';
import { startParameters } from '../../../domain/convergence/engine.ts';
import { cloudpodsDefault } from '../../../domain/convergence/policies.ts';
import { initialQuicklyFinishState, quicklyFinishStep } from '../../../domain/quickly-finish.ts';
import { brief, context, replay, sample } from './helpers.ts';
import { baseContext, GiB, MiB, runMigration, workloads } from './qemu-model.ts';
import { convergingTrace, samplesFrom } from './recorded.ts';

const withoutQuicklyFinish = cloudpodsDefaultPolicy(false);

describe('Cloudpods policy', () => {
  it('starts as Cloudpods does: 300 ms, auto-converge with throttle 60% + 20% (when allowed)', () => {
    expect(startParameters(cloudpodsDefault, baseContext({ autoConvergeAllowed: true }))).toMatchObject({
      downtimeMs: 300,
      autoConverge: true,
      cpuThrottleInitial: 60,
      cpuThrottleIncrement: 20,
    });
    expect(startParameters(cloudpodsDefault, baseContext())).toMatchObject({
      autoConverge: false,
      cpuThrottleInitial: null,
      cpuThrottleIncrement: null,
    });
  });

  it.each([
    [512 * MiB, 30],
    [960 * MiB, 30],
    [992 * MiB, 31],
    [2 * GiB, 64],
    [4 * GiB, 128],
    [4 * GiB + 31 * MiB, 128],
  ])('pauses after max(memory MB / 32, 30) s: %d bytes -> %d s', (memory, seconds) => {
    expect(cloudpodsPauseAfterSeconds(cloudpodsDefault, memory)).toBe(seconds);
  });

  it('pauses the guest once past that time, when pausing is allowed, and then does nothing else', () => {
    const samples = [29_500, 30_000, 30_500, 31_000, 60_000].map((at) =>
      sample(at, {
        dirtySyncCount: 9,
        remainingBytes: 40 * MiB,
        cpuThrottlePercentage: 99,
        expectedDowntimeMs: 900,
      }),
    );
    const run = replay(withoutQuicklyFinish, samples, context({ pauseAllowed: true }));
    expect(brief(run.actions)).toEqual(['pause-guest@30.5']);
    expect(run.actions[0]?.action.reason).toBe(
      '30.5 s elapsed > max(512 MB / 32 MB/s, 30 s) = 30 s, remaining 40.0 MiB: pausing the guest so the copy finishes',
    );
    const big = replay(
      withoutQuicklyFinish,
      [sample(64_000), sample(64_500)],
      context({ memoryBytes: 2 * GiB, pauseAllowed: true }),
    );
    expect(brief(big.actions)).toEqual(['pause-guest@64.5']);
  });

  it('never pauses when pausing is not allowed', () => {
    const samples = [10_000, 31_000, 600_000].map((at) => sample(at, { dirtySyncCount: 9 }));
    expect(replay(withoutQuicklyFinish, samples).actions).toEqual([]);
  });

  it('quickly-finish: the same decisions as quicklyFinishStep, carried as set-downtime actions', () => {
    const figures = [
      { dirtySyncCount: 3, cpuThrottlePercentage: 60, expectedDowntimeMs: 900 },
      { dirtySyncCount: 5, cpuThrottlePercentage: 99, expectedDowntimeMs: 900 },
      { dirtySyncCount: 6, cpuThrottlePercentage: 99, expectedDowntimeMs: 850 },
      { dirtySyncCount: 7, cpuThrottlePercentage: 99, expectedDowntimeMs: 812.4 },
      { dirtySyncCount: 8, cpuThrottlePercentage: 99, expectedDowntimeMs: 700 },
    ];
    const samples = figures.map((f, i) => sample(1000 * (i + 1), { ...f, remainingBytes: 40 * MiB }));
    const run = replay(cloudpodsDefault, samples);
    expect(brief(run.actions)).toEqual(['set-downtime:813@4']);
    const direct = quicklyFinishStep({ countFromRound: 5 }, samples[3]?.status ?? sample(0).status, 300);
    expect(run.actions[0]?.action.reason).toBe(`quickly-finish: ${direct.reason}`);
    expect(run.actions[0]?.action.reason).toMatch(
      /since round 5, now round 7: downtime limit 300 ms -> QEMU's expected 813 ms/,
    );
    expect(initialQuicklyFinishState).toEqual({ countFromRound: null });
  });

  it('without quickly-finish the downtime is never raised', () => {
    const samples = [5, 6, 7, 8].map((n) =>
      sample(n * 1000, { dirtySyncCount: n, cpuThrottlePercentage: 99, expectedDowntimeMs: 2000 }),
    );
    expect(replay(withoutQuicklyFinish, samples).actions).toEqual([]);
  });

  it('pauses even the recorded converging guest, which needs 48 s: the timer is blind to progress', () => {
    const converging = samplesFrom(convergingTrace);
    expect(brief(replay(cloudpodsDefault, converging, context({ pauseAllowed: true })).actions)).toEqual([
      'pause-guest@30.5',
    ]);
    expect(replay(cloudpodsDefault, converging).actions).toEqual([]);
  });

  it('in a closed loop: auto-converge plus quickly-finish gets the never-converging guest across', () => {
    const r = runMigration({
      workload: workloads.neverConverges,
      policy: cloudpodsDefault,
      context: baseContext({ autoConvergeAllowed: true }),
    });
    expect(r.outcome).toBe('completed');
    expect(r.endMs).toBeLessThan(30_000);
    const paused = runMigration({
      workload: workloads.neverConverges,
      policy: cloudpodsDefault,
      context: baseContext({ pauseAllowed: true }),
    });
    expect([paused.outcome, paused.actions.map((a) => `${a.action.type}@${a.atMs / 1000}`)]).toEqual([
      'completed',
      ['pause-guest@30.5'],
    ]);
  });
});
