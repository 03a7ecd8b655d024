import { describe, expect, it } from 'vitest';
import { startParameters } from '../../../domain/convergence/engine.ts';
import {
  ovirtSchedules,
  scheduleMaxDowntimeMs,
  schedulePolicy,
  scheduleSchema,
} from '../../../domain/convergence/schedule.ts';
import { brief, context, replay, sample } from './helpers.ts';
import { baseContext, MiB, runMigration, workloads } from './qemu-model.ts';
import { convergingTrace, neverConvergingTrace, samplesFrom } from './recorded.ts';

const never = samplesFrom(neverConvergingTrace);

/** One sample per pass boundary: pass n starts at n seconds with 40 MiB pending. */
const passes = (from: number, to: number) =>
  Array.from({ length: to - from + 1 }, (_, i) =>
    sample((from + i) * 1000, { dirtySyncCount: from + i, remainingBytes: 40 * MiB }),
  );

describe('oVirt schedules', () => {
  it("carry oVirt's shipped steps", () => {
    const steps = (name: keyof typeof ovirtSchedules) => [
      ovirtSchedules[name].initialDowntimeMs,
      ...ovirtSchedules[name].steps.map(
        (s) => `${s.action === 'set-downtime' ? s.downtimeMs : s.action}@${s.afterPass}`,
      ),
    ];
    expect(steps('minimal-downtime')).toEqual([100, '150@1', '200@2', '300@3', '400@4', '500@6', 'abort@7']);
    expect(steps('post-copy')).toEqual([100, '150@1', '200@2', 'post-copy@3', 'abort@4']);
    expect(steps('suspend-workload')).toEqual([
      100,
      '150@1',
      '200@2',
      '300@3',
      '400@4',
      '500@6',
      '5000@7',
      'abort@8',
    ]);
    expect(steps('large-vms')).toEqual([
      300,
      '400@1',
      '500@2',
      '700@3',
      '1000@4',
      '1500@6',
      '5000@7',
      'abort@8',
    ]);
    expect(Object.values(ovirtSchedules).map((s) => [s.autoConverge, s.compression])).toEqual([
      [true, false],
      [true, false],
      [true, true],
      [true, false],
    ]);
    expect(scheduleMaxDowntimeMs(ovirtSchedules['large-vms'])).toBe(5000);
  });

  it('start with the initial downtime, auto-converge when allowed, compression for suspend-workload', () => {
    expect(
      startParameters(ovirtSchedules['minimal-downtime'], baseContext({ autoConvergeAllowed: true })),
    ).toMatchObject({
      downtimeMs: 100,
      autoConverge: true,
      xbzrle: false,
    });
    expect(startParameters(ovirtSchedules['suspend-workload'], baseContext())).toMatchObject({
      downtimeMs: 100,
      autoConverge: false,
      xbzrle: true,
    });
    expect(startParameters(ovirtSchedules['large-vms'], baseContext()).reason).toBe(
      "schedule 'large-vms': initial downtime 300 ms, then 400 ms after pass 1, 500 ms after pass 2, 700 ms after pass 3, " +
        '1000 ms after pass 4, 1500 ms after pass 6, 5000 ms after pass 7, abort after pass 8',
    );
  });

  it('minimal downtime on the recorded never-converging guest: 150..500 ms after passes 1,2,3,4,6, abort after 7', () => {
    const run = replay(ovirtSchedules['minimal-downtime'], never, context({ currentDowntimeMs: 100 }));
    expect(brief(run.actions)).toEqual([
      'set-downtime:150@17.5',
      'set-downtime:200@19',
      'set-downtime:300@20.5',
      'set-downtime:400@22',
      'set-downtime:500@25.5',
      'abort@27',
    ]);
    expect(run.actions.map((a) => a.pass - 1)).toEqual([1, 2, 3, 4, 6, 7]);
    expect(run.actions[3]?.action.reason).toBe(
      'pass 4 done without switching over: 44.1 MiB remaining, 9.0 MiB fit 300 ms at 30.1 MiB/s; ' +
        "schedule 'minimal-downtime' after pass 4: downtime 300 -> 400 ms",
    );
    expect(run.actions[5]?.action.reason).toMatch(
      /schedule 'minimal-downtime' reaches its abort step \(pass 7\): aborting$/,
    );
  });

  it('suspend workload and very large VMs go on to 5000 ms, then abort', () => {
    expect(
      brief(
        replay(ovirtSchedules['suspend-workload'], passes(1, 12), context({ currentDowntimeMs: 100 }))
          .actions,
      ),
    ).toEqual([
      'set-downtime:150@2',
      'set-downtime:200@3',
      'set-downtime:300@4',
      'set-downtime:400@5',
      'set-downtime:500@7',
      'set-downtime:5000@8',
      'abort@9',
    ]);
    expect(
      brief(replay(ovirtSchedules['large-vms'], passes(1, 12), context({ currentDowntimeMs: 300 })).actions),
    ).toEqual([
      'set-downtime:400@2',
      'set-downtime:500@3',
      'set-downtime:700@4',
      'set-downtime:1000@5',
      'set-downtime:1500@7',
      'set-downtime:5000@8',
      'abort@9',
    ]);
  });

  it('takes at most one step per new pass, even when several passes went by between samples', () => {
    const samples = [
      sample(1000, { dirtySyncCount: 1 }),
      sample(2000, { dirtySyncCount: 6 }),
      ...passes(7, 9),
    ];
    expect(
      brief(replay(ovirtSchedules['minimal-downtime'], samples, context({ currentDowntimeMs: 100 })).actions),
    ).toEqual(['set-downtime:150@2', 'set-downtime:200@7', 'set-downtime:300@8', 'set-downtime:400@9']);
  });

  it('the first sample is never a pass boundary (a monitor that starts late does not replay the schedule)', () => {
    expect(
      replay(ovirtSchedules['minimal-downtime'], [sample(60_000, { dirtySyncCount: 9 })]).actions,
    ).toEqual([]);
  });

  it('post-copy policy: switches to post-copy after pass 3 when allowed, then does nothing more', () => {
    const samples = [
      ...passes(1, 4),
      sample(4500, { status: 'postcopy-active', dirtySyncCount: 4 }),
      ...passes(5, 8).map((s) => ({ ...s, status: { ...s.status, status: 'postcopy-active' as const } })),
    ];
    const run = replay(
      ovirtSchedules['post-copy'],
      samples,
      context({ currentDowntimeMs: 100, postCopyAllowed: true }),
    );
    expect(brief(run.actions)).toEqual(['set-downtime:150@2', 'set-downtime:200@3', 'start-post-copy@4']);
    expect(run.actions[2]?.action.reason).toMatch(
      /schedule 'post-copy' after pass 3: switching to post-copy$/,
    );
  });

  it('post-copy policy: a switch that did not take is followed by the abort at the next pass', () => {
    const run = replay(
      ovirtSchedules['post-copy'],
      passes(1, 6),
      context({ currentDowntimeMs: 100, postCopyAllowed: true }),
    );
    expect(brief(run.actions)).toEqual([
      'set-downtime:150@2',
      'set-downtime:200@3',
      'start-post-copy@4',
      'abort@5',
    ]);
  });

  it('post-copy policy without post-copy allowed: aborts where it would have switched, and says why', () => {
    const run = replay(ovirtSchedules['post-copy'], passes(1, 6), context({ currentDowntimeMs: 100 }));
    expect(brief(run.actions)).toEqual(['set-downtime:150@2', 'set-downtime:200@3', 'abort@4']);
    expect(run.actions[2]?.action.reason).toBe(
      'pass 3 done without switching over: 40.0 MiB remaining, 6.0 MiB fit 200 ms at 30.0 MiB/s; ' +
        "schedule 'post-copy' would switch to post-copy after pass 3, but post-copy is not allowed; " +
        "schedule 'post-copy' reaches its abort step (pass 4): aborting",
    );
  });

  it('aborts the recorded slow but converging guest when the schedule runs out (not so a fast one)', () => {
    const run = replay(
      ovirtSchedules['minimal-downtime'],
      samplesFrom(convergingTrace),
      context({ currentDowntimeMs: 100 }),
    );
    // It needs 11 passes at 22 MiB/s dirtying: the schedule runs out first (the predictive policy waits).
    expect(run.actions.map((a) => a.action.type).at(-1)).toBe('abort');
    const closed = runMigration({
      workload: workloads.converging,
      policy: ovirtSchedules['minimal-downtime'],
      context: baseContext(),
    });
    expect(closed.outcome).toBe('completed');
  });

  it('skips a set-downtime step that changes nothing', () => {
    const run = replay(ovirtSchedules['minimal-downtime'], passes(1, 3), context({ currentDowntimeMs: 150 }));
    expect(brief(run.actions)).toEqual(['set-downtime:200@3']);
  });
});

describe('operator schedules', () => {
  const steps = scheduleSchema.parse([
    { afterPass: 0, action: 'set-downtime', downtimeMs: 80 },
    { afterPass: 2, action: 'set-downtime', downtimeMs: 800 },
    { afterPass: 3, action: 'pause' },
    { afterPass: 5, action: 'abort' },
  ]);
  const mine = schedulePolicy('night-shift', steps, { defaultInitialDowntimeMs: 300 });

  it('pass 0 is the initial downtime', () => {
    expect(mine.initialDowntimeMs).toBe(80);
    expect(startParameters(mine, baseContext()).downtimeMs).toBe(80);
    expect(
      schedulePolicy('x', [{ afterPass: 4, action: 'abort' }], { defaultInitialDowntimeMs: 250 })
        .initialDowntimeMs,
    ).toBe(250);
  });

  it('pauses when allowed', () => {
    const run = replay(mine, passes(1, 7), context({ currentDowntimeMs: 80, pauseAllowed: true }));
    expect(brief(run.actions)).toEqual(['set-downtime:800@3', 'pause-guest@4', 'abort@6']);
    expect(run.actions[1]?.action.reason).toMatch(/schedule 'night-shift' after pass 3: pausing the guest$/);
  });

  it('skips the pause when it is not allowed and goes on to the next step at once', () => {
    const run = replay(mine, passes(1, 7), context({ currentDowntimeMs: 80 }));
    expect(brief(run.actions)).toEqual(['set-downtime:800@3', 'abort@4']);
    expect(run.actions[1]?.action.reason).toMatch(
      /would pause the guest after pass 3, but pausing is not allowed/,
    );
  });

  it('a JSON round trip of the state between samples changes nothing', () => {
    const ctx = context({ currentDowntimeMs: 80, pauseAllowed: true });
    expect(replay(mine, passes(1, 7), ctx, { json: true })).toEqual(replay(mine, passes(1, 7), ctx));
  });
});
