import { describe, expect, it } from 'vitest';
import type { MigrationStatus } from '../../domain/agent-contract.ts';
import {
  initialQuicklyFinishState,
  quicklyFinishStep,
  type QuicklyFinishState,
} from '../../domain/quickly-finish.ts';
import { migrationStatus } from './status-fixture.ts';

const MiB = 1024 * 1024;

/** Feeds the samples, the limit following each raise as the caller keeps it. */
function run(samples: Partial<MigrationStatus>[], limit = 300) {
  let state: QuicklyFinishState = initialQuicklyFinishState;
  let current = limit;
  const actions: { at: number; downtime: number }[] = [];
  samples.forEach((sample, i) => {
    const decision = quicklyFinishStep(
      state,
      migrationStatus({ remainingBytes: 64 * MiB, ...sample }),
      current,
    );
    state = decision.state;
    if (decision.setDowntimeMs !== undefined) {
      actions.push({ at: i, downtime: decision.setDowntimeMs });
      current = decision.setDowntimeMs;
    }
  });
  return actions;
}

/**
 * Cloudpods (yunionio/cloudpods), pkg/hostman/guestman/guesttasks.go, SGuestLiveMigrateTask.onGetMigrateStatus,
 * on each 'active' sample with `s.params.QuicklyFinish && stats.RAM != nil && stats.RAM.Remaining > 0`:
 * - `if stats.CPUThrottlePercentage == nil { return }` and
 *   `if *stats.CPUThrottlePercentage < options.HostOptions.LiveMigrateCpuThrottleMax { return }` (default 99,
 *   pkg/hostman/options/options.go): checked on every sample;
 * - `if stats.ExpectedDowntime != nil && *stats.ExpectedDowntime > s.expectDowntime` (300 at first, then each
 *   value set): `if s.dirtySyncCount == 0 { s.dirtySyncCount = stats.RAM.DirtySyncCount; return }`, then
 *   `if stats.RAM.DirtySyncCount <= s.dirtySyncCount+1 { return }`, then MigrateSetDowntime(expected).
 */
describe('quickly-finish (Cloudpods onGetMigrateStatus)', () => {
  it.each([
    {
      name: 'counts from the first sample over the limit, acts more than one round later',
      samples: [
        { dirtySyncCount: 3, cpuThrottlePercentage: 50, expectedDowntimeMs: 900 },
        { dirtySyncCount: 5, cpuThrottlePercentage: 99, expectedDowntimeMs: 900 },
        { dirtySyncCount: 6, cpuThrottlePercentage: 99, expectedDowntimeMs: 850 },
        { dirtySyncCount: 7, cpuThrottlePercentage: 99, expectedDowntimeMs: 812.4 },
        { dirtySyncCount: 8, cpuThrottlePercentage: 99, expectedDowntimeMs: 700 },
      ],
      expected: [{ at: 3, downtime: 813 }],
    },
    {
      name: 'the count starts at the first sample whose expected downtime exceeds the limit, not at max throttle',
      samples: [
        { dirtySyncCount: 4, cpuThrottlePercentage: 99, expectedDowntimeMs: 250 },
        { dirtySyncCount: 5, cpuThrottlePercentage: 99, expectedDowntimeMs: 280 },
        { dirtySyncCount: 6, cpuThrottlePercentage: 99, expectedDowntimeMs: 400 }, // recorded: 6
        { dirtySyncCount: 7, cpuThrottlePercentage: 99, expectedDowntimeMs: 400 }, // 7 <= 6 + 1
        { dirtySyncCount: 8, cpuThrottlePercentage: 99, expectedDowntimeMs: 400 },
      ],
      expected: [{ at: 4, downtime: 400 }],
    },
    {
      name: 'raises the limit again whenever the expected downtime grows past it, never lowers it',
      samples: [
        { dirtySyncCount: 2, cpuThrottlePercentage: 99, expectedDowntimeMs: 500 },
        { dirtySyncCount: 4, cpuThrottlePercentage: 99, expectedDowntimeMs: 500 },
        { dirtySyncCount: 5, cpuThrottlePercentage: 99, expectedDowntimeMs: 450 },
        { dirtySyncCount: 5, cpuThrottlePercentage: 99, expectedDowntimeMs: 700 },
        { dirtySyncCount: 6, cpuThrottlePercentage: 99, expectedDowntimeMs: 700 },
        { dirtySyncCount: 7, cpuThrottlePercentage: 99, expectedDowntimeMs: 1200 },
      ],
      expected: [
        { at: 1, downtime: 500 },
        { at: 3, downtime: 700 },
        { at: 5, downtime: 1200 },
      ],
    },
    {
      name: 'the throttle must be at its maximum on the sample that acts (not latched)',
      samples: [
        { dirtySyncCount: 2, cpuThrottlePercentage: 99, expectedDowntimeMs: 900 },
        { dirtySyncCount: 5, cpuThrottlePercentage: 98, expectedDowntimeMs: 900 },
        { dirtySyncCount: 6, cpuThrottlePercentage: 99, expectedDowntimeMs: 900 },
      ],
      expected: [{ at: 2, downtime: 900 }],
    },
    {
      name: 'nothing without a throttle (auto-converge off)',
      samples: [2, 4, 6, 8].map((n) => ({ dirtySyncCount: n, expectedDowntimeMs: 5000 })),
      expected: [],
    },
    {
      name: 'nothing while throttling has not reached its maximum',
      samples: [10, 20, 30, 40].map((n) => ({
        dirtySyncCount: n,
        cpuThrottlePercentage: 90,
        expectedDowntimeMs: 5000,
      })),
      expected: [],
    },
    {
      name: 'nothing when no memory remains',
      samples: [2, 4, 6, 8].map((n) => ({
        dirtySyncCount: n,
        cpuThrottlePercentage: 99,
        expectedDowntimeMs: 5000,
        remainingBytes: 0,
      })),
      expected: [],
    },
    {
      name: 'no memory remaining does not start the count either',
      samples: [
        { dirtySyncCount: 2, cpuThrottlePercentage: 99, expectedDowntimeMs: 900, remainingBytes: 0 },
        { dirtySyncCount: 4, cpuThrottlePercentage: 99, expectedDowntimeMs: 900 }, // recorded: 4
        { dirtySyncCount: 5, cpuThrottlePercentage: 99, expectedDowntimeMs: 900 },
        { dirtySyncCount: 6, cpuThrottlePercentage: 99, expectedDowntimeMs: 900 },
      ],
      expected: [{ at: 3, downtime: 900 }],
    },
    {
      name: 'does not lower the limit when QEMU already expects to fit',
      samples: [5, 6, 7, 8].map((n) => ({
        dirtySyncCount: n,
        cpuThrottlePercentage: 99,
        expectedDowntimeMs: 200,
      })),
      expected: [],
    },
    {
      name: 'ignores samples outside the active pre-copy phase',
      samples: [5, 7, 9].map((n) => ({
        status: 'postcopy-active' as const,
        dirtySyncCount: n,
        cpuThrottlePercentage: 99,
        expectedDowntimeMs: 5000,
      })),
      expected: [],
    },
  ])('$name', ({ samples, expected }) => {
    expect(run(samples)).toEqual(expected);
  });

  it('says why, with the numbers', () => {
    const status = migrationStatus({
      remainingBytes: 64 * MiB,
      dirtySyncCount: 7,
      cpuThrottlePercentage: 99,
      expectedDowntimeMs: 812.4,
    });
    expect(quicklyFinishStep({ countFromRound: 5 }, status, 300)).toEqual({
      state: { countFromRound: 5 },
      setDowntimeMs: 813,
      reason:
        "CPU throttle at 99%, QEMU expects 813 ms > the 300 ms limit since round 5, now round 7: downtime limit 300 ms -> QEMU's expected 813 ms",
    });
  });

  it('reads a state saved in the old shape as not counting yet', () => {
    const old = { maxThrottleAtRound: 5, applied: true } as unknown as QuicklyFinishState;
    const status = migrationStatus({
      remainingBytes: 64 * MiB,
      dirtySyncCount: 9,
      cpuThrottlePercentage: 99,
      expectedDowntimeMs: 900,
    });
    expect(quicklyFinishStep(old, status, 300)).toEqual({ state: { countFromRound: 9 } });
  });
});
