import { describe, expect, it } from 'vitest';
import { decide, startParameters } from '../../../domain/convergence/engine.ts';
import {
  ovirtSchedules,
  scheduleMaxDowntimeMs,
  schedulePolicy,
  scheduleSchema,
  type ScheduleState,
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

  // vdsm runs a step when `head['limit'] < current_iteration` (strict): limits 1,2,3,4,6 and the abort fire
  // once 2,3,4,5,7 and 8 passes are done (the recording's first sample is in pass 1, dirty-sync-count 1).
  it('minimal downtime on the recorded never-converging guest: 150..500 ms past passes 1,2,3,4,6, abort past 7', () => {
    const run = replay(ovirtSchedules['minimal-downtime'], never, context({ currentDowntimeMs: 100 }));
    expect(brief(run.actions)).toEqual([
      'set-downtime:150@19',
      'set-downtime:200@20.5',
      'set-downtime:300@22',
      'set-downtime:400@23.5',
      'set-downtime:500@27',
      'abort@28.5',
    ]);
    expect(run.actions.map((a) => a.pass - 1)).toEqual([2, 3, 4, 5, 7, 8]);
    expect(run.actions[3]?.action.reason).toBe(
      'pass 5 done without switching over (dirty-sync-count 6, 1 at the first sample): 47.3 MiB remaining, ' +
        "9.1 MiB fit 300 ms at 30.2 MiB/s; schedule 'minimal-downtime' (more than 4 passes): downtime 300 -> 400 ms",
    );
    expect(run.actions[5]?.action.reason).toMatch(
      /schedule 'minimal-downtime' reaches its abort step \(more than 7 passes\): aborting$/,
    );
  });

  it('suspend workload and very large VMs go on to 5000 ms, then abort', () => {
    expect(
      brief(
        replay(ovirtSchedules['suspend-workload'], passes(1, 12), context({ currentDowntimeMs: 100 }))
          .actions,
      ),
    ).toEqual([
      'set-downtime:150@3',
      'set-downtime:200@4',
      'set-downtime:300@5',
      'set-downtime:400@6',
      'set-downtime:500@8',
      'set-downtime:5000@9',
      'abort@10',
    ]);
    expect(
      brief(replay(ovirtSchedules['large-vms'], passes(1, 12), context({ currentDowntimeMs: 300 })).actions),
    ).toEqual([
      'set-downtime:400@3',
      'set-downtime:500@4',
      'set-downtime:700@5',
      'set-downtime:1000@6',
      'set-downtime:1500@8',
      'set-downtime:5000@9',
      'abort@10',
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

  it('post-copy policy: switches to post-copy past pass 3 when allowed, then does nothing more', () => {
    const samples = [
      ...passes(1, 5),
      sample(5500, { status: 'postcopy-active', dirtySyncCount: 5 }),
      ...passes(6, 9).map((s) => ({ ...s, status: { ...s.status, status: 'postcopy-active' as const } })),
    ];
    const run = replay(
      ovirtSchedules['post-copy'],
      samples,
      context({ currentDowntimeMs: 100, postCopyAllowed: true }),
    );
    expect(brief(run.actions)).toEqual(['set-downtime:150@3', 'set-downtime:200@4', 'start-post-copy@5']);
    expect(run.actions[2]?.action.reason).toMatch(
      /schedule 'post-copy' \(more than 3 passes\): switching to post-copy$/,
    );
  });

  it('post-copy policy: a switch that did not take is followed by the abort at the next pass', () => {
    const run = replay(
      ovirtSchedules['post-copy'],
      passes(1, 7),
      context({ currentDowntimeMs: 100, postCopyAllowed: true }),
    );
    expect(brief(run.actions)).toEqual([
      'set-downtime:150@3',
      'set-downtime:200@4',
      'start-post-copy@5',
      'abort@6',
    ]);
  });

  it('post-copy policy without post-copy allowed: aborts where it would have switched, and says why', () => {
    const run = replay(ovirtSchedules['post-copy'], passes(1, 6), context({ currentDowntimeMs: 100 }));
    expect(brief(run.actions)).toEqual(['set-downtime:150@3', 'set-downtime:200@4', 'abort@5']);
    expect(run.actions[2]?.action.reason).toBe(
      'pass 4 done without switching over (dirty-sync-count 5, 1 at the first sample): 40.0 MiB remaining, ' +
        '6.0 MiB fit 200 ms at 30.0 MiB/s; ' +
        "schedule 'post-copy' would switch to post-copy after more than 3 passes, but post-copy is not allowed; " +
        "schedule 'post-copy' reaches its abort step (more than 4 passes): aborting",
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
    const run = replay(ovirtSchedules['minimal-downtime'], passes(1, 4), context({ currentDowntimeMs: 150 }));
    expect(brief(run.actions)).toEqual(['set-downtime:200@4']);
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
    expect(brief(run.actions)).toEqual(['set-downtime:800@4', 'pause-guest@5', 'abort@7']);
    expect(run.actions[1]?.action.reason).toMatch(
      /schedule 'night-shift' \(more than 3 passes\): pausing the guest$/,
    );
  });

  it('skips the pause when it is not allowed and goes on to the next step at once', () => {
    const run = replay(mine, passes(1, 7), context({ currentDowntimeMs: 80 }));
    expect(brief(run.actions)).toEqual(['set-downtime:800@4', 'abort@5']);
    expect(run.actions[1]?.action.reason).toMatch(
      /would pause the guest after more than 3 passes, but pausing is not allowed/,
    );
  });

  it('a JSON round trip of the state between samples changes nothing', () => {
    const ctx = context({ currentDowntimeMs: 80, pauseAllowed: true });
    expect(replay(mine, passes(1, 7), ctx, { json: true })).toEqual(replay(mine, passes(1, 7), ctx));
  });
});

/**
 * oVirt/vdsm, lib/vdsm/virt/migration.py, MonitorThread.monitor_migration and MonitorThread._next_action:
 * - the first sample of the running job sets "initial_iteration = last_iteration = progress.mem_iteration"
 *   (libvirt's memory_iteration, QEMU's dirty-sync-count);
 * - a later sample with "progress.mem_iteration > last_iteration" computes
 *   "current_iteration = last_iteration - initial_iteration" and calls _next_action(current_iteration);
 * - _next_action runs and pops the head step only "if head['limit'] < stalling": strict, one step per call.
 * ovirt-engine (ConvergenceSchedule.addDowntimes) sends oVirt's "lastItems" with limit -1.
 */
describe("vdsm's iteration count and strict comparison", () => {
  const oneStep = (limit: number) =>
    schedulePolicy('t', [{ afterPass: limit, action: 'set-downtime', downtimeMs: 999 }], {
      defaultInitialDowntimeMs: 100,
    });
  const from = (first: number, last: number) =>
    Array.from({ length: last - first + 1 }, (_, i) =>
      sample((i + 1) * 1000, { dirtySyncCount: first + i, remainingBytes: 40 * MiB }),
    );
  const firesAt = (first: number, limit: number) =>
    replay(oneStep(limit), from(first, 30), context({ currentDowntimeMs: 100 })).actions.map((a) => a.pass);

  it.each([
    // first dirty-sync-count seen, the step's limit (afterPass), dirty-sync-count of the sample it runs at
    [1, 1, 3],
    [1, 2, 4],
    [1, 3, 5],
    [1, 6, 8],
    [2, 2, 5],
    [4, 1, 6],
    [4, 3, 8],
    [9, 7, 17],
  ])('first sample at dirty-sync-count %d, limit %d: runs at dirty-sync-count %d', (first, limit, at) => {
    // current_iteration = at - first > limit, and not one sample earlier (current_iteration == limit).
    expect(firesAt(first, limit)).toEqual([at]);
    expect(at - first).toBe(limit + 1);
  });

  it("a last item (limit -1 in vdsm) runs at the next new pass after the step before it, as 'the next pass' here", () => {
    // oVirt's post-copy policy: 150@1, 200@2, then the lastItems post-copy and abort (limit -1 each).
    const run = replay(
      ovirtSchedules['post-copy'],
      [sample(1000, { dirtySyncCount: 1 }), sample(2000, { dirtySyncCount: 4 }), ...from(9, 11)],
      context({ currentDowntimeMs: 100, postCopyAllowed: true }),
    );
    // vdsm: iteration 3 > 1 runs 150; 8 > 2 runs 200; 9 > -1 runs post-copy; 10 > -1 runs abort.
    expect(run.actions.map((a) => `${a.action.type}@${a.pass}`)).toEqual([
      'set-downtime@4',
      'set-downtime@9',
      'start-post-copy@10',
      'abort@11',
    ]);
  });

  it('a state saved before the first sample was recorded counts from dirty-sync-count 1', () => {
    const policy = oneStep(2);
    const saved = { kind: 'schedule', lastPass: 2, nextStep: 0, postCopy: false, aborted: false } as const;
    const ctx = context({ currentDowntimeMs: 100 });
    const three = decide(policy, saved as unknown as ScheduleState, from(3, 3)[0]!, ctx);
    expect(three.actions).toEqual([]);
    expect(decide(policy, three.state, from(4, 4)[0]!, ctx).actions.map((a) => a.type)).toEqual([
      'set-downtime',
    ]);
  });
});
