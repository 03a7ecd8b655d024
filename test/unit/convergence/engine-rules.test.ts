import { describe, expect, it } from 'vitest';
import { engineCompletionDeadline } from '../../../domain/convergence/engine.ts';
import {
  cloudpodsDefault,
  kubevirtDefault,
  novaDefault,
  predictiveDefault,
  type ConvergencePolicy,
} from '../../../domain/convergence/policies.ts';
import { ovirtSchedules, schedulePolicy } from '../../../domain/convergence/schedule.ts';
import type { ConvergenceContext } from '../../../domain/convergence/types.ts';
import { brief, context, replay, sample } from './helpers.ts';
import { baseContext, GiB, MiB, runMigration, workloads } from './qemu-model.ts';
import { convergingTrace, neverConvergingTrace, samplesFrom } from './recorded.ts';

/** Samples inside the first pass with remaining bytes still falling: no policy has a reason to act. */
const steady = (seconds: number[]) =>
  seconds.map((s) => sample(s * 1000, { dirtySyncCount: 1, remainingBytes: (2_000_000 - s * 1000) * 1024 }));

const terminal = (r: ReturnType<typeof replay>) =>
  brief(r.actions.filter((a) => a.action.type !== 'set-downtime' && a.action.type !== 'set-bandwidth'));

const deadline150: Partial<ConvergenceContext> = { completionTimeoutPerGiB: 150 };

/**
 * KubeVirt (kubevirt/kubevirt), pkg/virt-launcher/virtwrap/live-migration-source.go:
 * - newMigrationMonitor: "acceptableCompletionTime: options.CompletionTimeoutPerGiB * getVMIMigrationDataSize(...)";
 *   pkg/virt-launcher/virtwrap/manager.go getVMIMigrationDataSize: guest memory, plus the ephemeral disks for a
 *   block migration, "memory.ScaledValue(resource.Giga)" (decimal GB, rounded up);
 * - shouldTriggerTimeout: 0 = never; "elapsedSeconds := elapsedNs / int64(time.Second)" and
 *   "elapsedSeconds > m.acceptableCompletionTime";
 * - handleLegacyConvergence: in post-copy nothing; past the deadline (disruption allowed, not yet paused)
 *   "dom.MigrateStartPostCopy(0)" when AllowPostCopy, else "dom.Suspend()" and
 *   "m.acceptableCompletionTime *= 2"; otherwise past the (doubled) deadline "m.l.cancelMigration(m.vmi)".
 */
describe('the completion deadline, under every policy (KubeVirt completionTimeoutPerGiB)', () => {
  it.each([
    // memory, local disks, s/GiB, deadline seconds, GB
    [512 * MiB, 0, 150, 150, 1],
    [1 * GiB, 0, 150, 300, 2], // 1.07 GB rounds up to 2
    [6 * GiB, 0, 800, 5600, 7],
    [512 * MiB, 2 * GiB, 150, 450, 3], // memory + block-migrated disks
    [4 * GiB, 0, 0, 0, 5], // 0 = no deadline
  ])('memory %d + disks %d at %d s/GiB: %d s (%d GB)', (memoryBytes, localDiskBytes, perGiB, seconds, gb) => {
    expect(
      engineCompletionDeadline({
        ...baseContext({ memoryBytes, localDiskBytes }),
        completionTimeoutPerGiB: perGiB,
      }),
    ).toEqual({ seconds, dataGb: gb });
  });

  const everyPolicy: [string, ConvergencePolicy][] = [
    ['predictive', predictiveDefault],
    ['ovirt:minimal-downtime', ovirtSchedules['minimal-downtime']],
    ['ovirt:post-copy', ovirtSchedules['post-copy']],
    ['cloudpods', { ...cloudpodsDefault, quicklyFinish: false }],
    ['nova', novaDefault],
  ];

  it.each(everyPolicy)(
    '%s: whole seconds > deadline, with disruption allowed: post-copy when allowed, then nothing more',
    (_n, policy) => {
      const run = replay(
        policy,
        steady([10, 150, 150.9, 151, 152, 400]),
        context({ ...deadline150, postCopyAllowed: true, pauseAllowed: true }),
      );
      if (policy.kind === 'cloudpods') {
        // Cloudpods pauses on its own timer (30 s for 512 MiB) first: its pause counts as the pause.
        expect(terminal(run)).toEqual(['pause-guest@150', 'abort@400']);
        return;
      }
      expect(terminal(run)).toEqual(['start-post-copy@151']);
      expect(run.actions.at(-1)?.action.reason).toBe(
        '151 s elapsed > completion deadline 150 s (completionTimeoutPerGiB 150 s x 1 GB: 512.0 MiB of memory, ' +
          'decimal GB rounded up), remaining 1805.7 MiB: switching to post-copy',
      );
    },
  );

  it.each(everyPolicy)(
    '%s: no post-copy, disruption allowed: pause, double the deadline, abort past it',
    (_n, policy) => {
      const run = replay(
        policy,
        steady([150, 151, 300, 301, 302]),
        context({ ...deadline150, pauseAllowed: true }),
      );
      // Cloudpods pauses on its own timer (30 s for 512 MiB) first: its pause counts as the pause.
      expect(terminal(run)).toEqual(
        policy.kind === 'cloudpods' ? ['pause-guest@150', 'abort@301'] : ['pause-guest@151', 'abort@301'],
      );
      expect(run.actions.at(-1)?.action.reason).toBe(
        '301 s elapsed > doubled completion deadline 300 s (the guest is paused), remaining 1659.2 MiB: aborting',
      );
    },
  );

  // KubeVirt shouldAssistMigrationToComplete: "m.options.AllowWorkloadDisruption && m.shouldTriggerTimeout(...)".
  it.each(everyPolicy)(
    '%s: disruption not allowed: aborts at the deadline, post-copy allowed or not',
    (_n, policy) => {
      for (const postCopyAllowed of [false, true]) {
        const run = replay(policy, steady([150, 151, 152]), context({ ...deadline150, postCopyAllowed }));
        expect(terminal(run)).toEqual(['abort@151']);
      }
      const run = replay(policy, steady([150, 151, 152]), context(deadline150));
      expect(run.actions.at(-1)?.action.reason).toMatch(
        /, remaining 1805\.7 MiB, and workload disruption \(post-copy or pausing the guest\) is not allowed: aborting$/,
      );
    },
  );

  it('counts block-migrated disks (512 MiB + 2 GiB of disks = 3 GB: 450 s)', () => {
    const ctx = context({ ...deadline150, localDiskBytes: 2 * GiB });
    expect(terminal(replay(predictiveDefault, steady([449, 450, 451]), ctx))).toEqual(['abort@451']);
  });

  it('does nothing in post-copy or outside the active pre-copy', () => {
    const samples = [200, 300].map((s) => sample(s * 1000, { status: 'postcopy-active', dirtySyncCount: 3 }));
    expect(replay(predictiveDefault, samples, context(deadline150)).actions).toEqual([]);
  });

  it("KubeVirt's own policy is not doubled: the same decisions with or without the engine's deadline", () => {
    const ctx = context({ postCopyAllowed: false, pauseAllowed: true });
    const samples = steady([150, 151, 300, 301, 302]);
    const alone = replay(kubevirtDefault, samples, ctx);
    expect(replay(kubevirtDefault, samples, { ...ctx, completionTimeoutPerGiB: 150 })).toEqual(alone);
    expect(brief(alone.actions)).toEqual(['pause-guest@151', 'abort@301']);
  });

  it("the policy's own terminal action wins on its sample: one abort, the schedule's", () => {
    const policy = schedulePolicy('short', [{ afterPass: 1, action: 'abort' }], {
      defaultInitialDowntimeMs: 100,
    });
    const samples = [sample(1000, { dirtySyncCount: 1 }), sample(200_000, { dirtySyncCount: 3 })];
    const run = replay(policy, samples, context(deadline150));
    expect(brief(run.actions)).toEqual(['abort@200']);
    expect(run.actions[0]?.action.reason).toMatch(/schedule 'short' reaches its abort step/);
  });

  it("after the policy's own post-copy request: no deadline, and the policy stays in charge", () => {
    // oVirt's post-copy schedule; the switch does not take (still 'active'): vdsm goes on to the abort step.
    const samples = [1, 2, 3, 4, 5, 6].map((n) =>
      sample(n === 6 ? 400_000 : n * 1000, { dirtySyncCount: n, remainingBytes: 40 * MiB }),
    );
    const run = replay(
      ovirtSchedules['post-copy'],
      [...samples.slice(0, 5), sample(200_000, { dirtySyncCount: 5, remainingBytes: 40 * MiB }), samples[5]!],
      context({ ...deadline150, currentDowntimeMs: 100, postCopyAllowed: true, pauseAllowed: true }),
    );
    expect(brief(run.actions)).toEqual([
      'set-downtime:150@3',
      'set-downtime:200@4',
      'start-post-copy@5',
      'abort@400',
    ]);
    expect(run.actions[3]?.action.reason).toMatch(/schedule 'post-copy' reaches its abort step/);
  });

  it('no deadline (0, or a plan frozen before the field): the policy alone, state untouched', () => {
    for (const policy of [
      predictiveDefault,
      ovirtSchedules['minimal-downtime'],
      novaDefault,
      cloudpodsDefault,
    ]) {
      for (const trace of [convergingTrace, neverConvergingTrace]) {
        const ctx = context({ postCopyAllowed: true, pauseAllowed: true });
        const alone = replay(policy, samplesFrom(trace), ctx);
        expect(replay(policy, samplesFrom(trace), { ...ctx, completionTimeoutPerGiB: 0 })).toEqual(alone);
        for (const state of alone.states) expect('engine' in state).toBe(false);
      }
    }
  });

  it('its state survives JSON round trips with the same decisions', () => {
    const ctx = context({ ...deadline150, pauseAllowed: true, quicklyFinish: true });
    const samples = [...samplesFrom(neverConvergingTrace), ...steady([150, 151, 300, 301])];
    for (const policy of [predictiveDefault, ovirtSchedules['large-vms']]) {
      expect(replay(policy, samples, ctx, { json: true })).toEqual(replay(policy, samples, ctx));
    }
  });
});

/** Samples with the throttle at its maximum and QEMU expecting `expected` ms, one per dirty sync. */
const throttled = (passes: number[], expected: number) =>
  passes.map((n) =>
    sample(n * 1000, {
      dirtySyncCount: n,
      remainingBytes: 40 * MiB,
      cpuThrottlePercentage: 99,
      expectedDowntimeMs: expected,
    }),
  );

describe('quickly_finish on top of the selected policy', () => {
  it("keeps the schedule's own steps; quickly-finish raises the downtime where the schedule does not act", () => {
    const run = replay(
      ovirtSchedules['minimal-downtime'],
      throttled([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 900),
      context({ currentDowntimeMs: 100, quicklyFinish: true }),
    );
    // Quickly-finish counts from round 1 (900 > 100 ms) and could act from round 3, but the schedule sets the
    // downtime itself at rounds 3..6: the policy wins those samples. At round 7 the schedule has nothing to do;
    // at 8 it sets its own 500 ms (its actions win), at 9 it aborts.
    expect(brief(run.actions)).toEqual([
      'set-downtime:150@3',
      'set-downtime:200@4',
      'set-downtime:300@5',
      'set-downtime:400@6',
      'set-downtime:900@7',
      'set-downtime:500@8',
      'abort@9',
    ]);
    expect(run.actions[4]?.action.reason).toBe(
      "quickly-finish: CPU throttle at 99%, QEMU expects 900 ms > the 400 ms limit since round 1, now round 7: downtime limit 400 ms -> QEMU's expected 900 ms",
    );
  });

  it('runs beside the predictive default and follows the expected downtime up', () => {
    const samples = [...throttled([1, 2, 3], 500), ...throttled([4], 800)];
    const run = replay(predictiveDefault, samples, context({ currentDowntimeMs: 100, quicklyFinish: true }));
    expect(brief(run.actions.filter((a) => a.action.reason.startsWith('quickly-finish')))).toEqual([
      'set-downtime:500@3',
      'set-downtime:800@4',
    ]);
  });

  it('stops once the guest is paused or the migration finished (Cloudpods: nothing after its stop)', () => {
    const policy = schedulePolicy('p', [{ afterPass: 1, action: 'pause' }], {
      defaultInitialDowntimeMs: 100,
    });
    const run = replay(
      policy,
      throttled([1, 2, 3, 4, 5, 6], 900),
      context({ currentDowntimeMs: 100, pauseAllowed: true, quicklyFinish: true }),
    );
    expect(brief(run.actions)).toEqual(['pause-guest@3']);
  });

  it('is not run twice under a Cloudpods policy that already runs it', () => {
    const samples = throttled([1, 2, 3, 4, 5], 900);
    const alone = replay(cloudpodsDefault, samples, context());
    const flagged = replay(cloudpodsDefault, samples, context({ quicklyFinish: true }));
    expect(flagged).toEqual(alone);
    expect(brief(alone.actions)).toEqual(['set-downtime:900@3']);
  });

  it('a plan without the flag decides as before, with the same state', () => {
    const samples = throttled([1, 2, 3, 4, 5, 6, 7, 8, 9], 900);
    const ctx = context({ currentDowntimeMs: 100 });
    for (const policy of [predictiveDefault, ovirtSchedules['minimal-downtime']]) {
      const before = replay(policy, samples, ctx);
      expect(replay(policy, samples, { ...ctx, quicklyFinish: false })).toEqual(before);
      expect(before.actions.some((a) => a.action.reason.startsWith('quickly-finish'))).toBe(false);
    }
  });

  it('in a closed loop: the never-converging guest gets across under the predictive default with it', () => {
    const r = runMigration({
      workload: workloads.neverConverges,
      policy: predictiveDefault,
      context: baseContext({ autoConvergeAllowed: true, quicklyFinish: true }),
    });
    expect(r.outcome).toBe('completed');
  });
});
