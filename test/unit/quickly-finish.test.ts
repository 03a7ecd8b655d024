import { describe, expect, it } from 'vitest';
import {
  initialQuicklyFinishState,
  quicklyFinishStep,
  type QuicklyFinishState,
} from '../../domain/quickly-finish.ts';
import { migrationStatus } from './status-fixture.ts';

function run(samples: Parameters<typeof migrationStatus>[0][], limit = 300) {
  let state: QuicklyFinishState = initialQuicklyFinishState;
  const actions: { at: number; downtime: number }[] = [];
  samples.forEach((sample, i) => {
    const decision = quicklyFinishStep(state, migrationStatus(sample), limit);
    state = decision.state;
    if (decision.setDowntimeMs !== undefined) actions.push({ at: i, downtime: decision.setDowntimeMs });
  });
  return actions;
}

describe('quickly-finish (Cloudpods)', () => {
  it('raises the downtime to the expected one two rounds after throttling maxed out, once', () => {
    const actions = run([
      { dirtySyncCount: 3, cpuThrottlePercentage: 50, expectedDowntimeMs: 900 },
      { dirtySyncCount: 5, cpuThrottlePercentage: 99, expectedDowntimeMs: 900 },
      { dirtySyncCount: 6, cpuThrottlePercentage: 99, expectedDowntimeMs: 850 },
      { dirtySyncCount: 7, cpuThrottlePercentage: 99, expectedDowntimeMs: 812.4 },
      { dirtySyncCount: 8, cpuThrottlePercentage: 99, expectedDowntimeMs: 700 },
    ]);
    expect(actions).toEqual([{ at: 3, downtime: 813 }]);
  });

  it('does nothing while throttling has not reached its maximum', () => {
    expect(
      run(
        [10, 20, 30, 40].map((n) => ({
          dirtySyncCount: n,
          cpuThrottlePercentage: 90,
          expectedDowntimeMs: 5000,
        })),
      ),
    ).toEqual([]);
  });

  it('does not lower the limit when QEMU already expects to fit', () => {
    expect(
      run(
        [5, 6, 7, 8].map((n) => ({ dirtySyncCount: n, cpuThrottlePercentage: 99, expectedDowntimeMs: 200 })),
      ),
    ).toEqual([]);
  });

  it('ignores samples outside the active pre-copy phase', () => {
    expect(
      run(
        [5, 7, 9].map((n) => ({
          status: 'postcopy-active' as const,
          dirtySyncCount: n,
          cpuThrottlePercentage: 99,
          expectedDowntimeMs: 5000,
        })),
      ),
    ).toEqual([]);
  });
});
