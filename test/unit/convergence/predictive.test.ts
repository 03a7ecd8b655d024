import { describe, expect, it } from 'vitest';
import { startParameters } from '../../../domain/convergence/engine.ts';
import {
  kubevirtDefault,
  predictiveDefault,
  predictivePolicy,
} from '../../../domain/convergence/policies.ts';
import type { PredictivePolicy } from '../../../domain/convergence/predictive.ts';
import type { StartContext } from '../../../domain/convergence/types.ts';
import { brief, context, replay, sample } from './helpers.ts';
import { baseContext, MiB, runMigration, workloads, type Workload } from './qemu-model.ts';
import { convergingTrace, neverConvergingTrace, samplesFrom } from './recorded.ts';

const never = samplesFrom(neverConvergingTrace);
const permissions: Partial<StartContext>[] = [
  {},
  { postCopyAllowed: true },
  { pauseAllowed: true },
  { autoConvergeAllowed: true },
  { postCopyAllowed: true, pauseAllowed: true, autoConvergeAllowed: true },
];

const run = (
  workload: Workload,
  perm: Partial<StartContext> = {},
  policy: PredictivePolicy = predictiveDefault,
) => runMigration({ workload, policy, context: baseContext(perm) });

describe('predictive policy', () => {
  it('starts at a third of the maximum downtime, auto-converge (QEMU throttle defaults) when allowed', () => {
    expect(predictiveDefault).toMatchObject({
      initialDowntimeMs: 100,
      downtimeCeilingMs: 300,
      progressTimeoutSeconds: 150,
    });
    expect(startParameters(predictiveDefault, baseContext({ autoConvergeAllowed: true }))).toMatchObject({
      downtimeMs: 100,
      autoConverge: true,
      cpuThrottleInitial: 20,
      cpuThrottleIncrement: 10,
      postCopy: false,
      xbzrle: false,
    });
    expect(startParameters(predictiveDefault, baseContext({ postCopyAllowed: true })).reason).toBe(
      'predictive: downtime 100 ms (may rise to 300 ms when the copy is predicted not to converge); then post-copy, abort',
    );
  });

  it('never acts on the recorded converging guest, whatever it is allowed', () => {
    for (const perm of permissions) {
      expect(
        replay(predictiveDefault, samplesFrom(convergingTrace), context({ currentDowntimeMs: 100, ...perm }))
          .actions,
      ).toEqual([]);
    }
  });

  it('never acts on converging guests in a closed loop either: they complete untouched', () => {
    for (const workload of [workloads.converging, workloads.slowConverging]) {
      for (const perm of permissions) {
        const r = run(workload, perm);
        expect(r.outcome).toBe('completed');
        expect(r.actions).toEqual([]);
      }
    }
  });

  it('acts on the never-converging guest after three passes (20.5 s), not after minutes', () => {
    const outcomes = permissions.map((perm) => {
      const r = run(workloads.neverConverges, perm);
      return [r.outcome, brief(r.actions)];
    });
    expect(outcomes).toEqual([
      ['aborted', ['abort@20.5']],
      ['completed', ['start-post-copy@20.5']],
      ['completed', ['pause-guest@20.5']],
      ['completed', ['set-downtime:300@20.5', 'raise-throttle:30@20.5']],
      ['completed', ['set-downtime:300@20.5', 'raise-throttle:30@20.5']],
    ]);
    // The first pass (all 512 MiB at 30 MiB/s) ends at 17.1 s: that is three 1.6 s passes later.
    const kubevirt = runMigration({
      workload: workloads.neverConverges,
      policy: kubevirtDefault,
      context: baseContext(),
    });
    expect(kubevirt.endMs - 20_500).toBeGreaterThan(130_000);
  });

  it('says why it gives up, with the numbers and every rung it could not take', () => {
    const r = run(workloads.neverConverges);
    expect(r.actions[0]?.action.reason).toBe(
      'pass 3: will not converge: dirty 40.0 MiB/s >= 90% of transfer 30.0 MiB/s, and 48.0 MiB pending > the 3.0 MiB ' +
        'that fit 100 ms at 30.0 MiB/s (needs ~1600 ms); needs ~1600 ms of downtime, the policy allows 300 ms; ' +
        'auto-converge not allowed; post-copy not allowed; pausing the guest not allowed: nothing left to try, aborting',
    );
  });

  it('throttling finishes the job with the downtime within the ceiling', () => {
    const r = run(workloads.neverConverges, { autoConvergeAllowed: true });
    expect(r.outcome).toBe('completed');
    expect(r.endMs).toBeLessThan(30_000);
    expect(r.downtimeMs).toBeLessThanOrEqual(300);
    expect(r.actions[1]?.action.reason).toMatch(/: CPU throttle at \d+%, increment 10 -> 30%$/);
  });

  it('raises the downtime to what the small hot working set needs (+25%), no further', () => {
    for (const perm of permissions) {
      const r = run(workloads.smallHotSet, perm);
      expect(r.outcome).toBe('completed');
      expect(brief(r.actions)).toEqual(['set-downtime:250@18']);
      expect(r.downtimeMs).toBeLessThanOrEqual(250);
    }
    expect(run(workloads.smallHotSet).actions[0]?.action.reason).toBe(
      'pass 5: will not converge: dirty 60.0 MiB/s >= 90% of transfer 30.0 MiB/s, and 6.0 MiB pending > the 3.0 MiB ' +
        'that fit 100 ms at 30.0 MiB/s (needs ~200 ms): downtime 100 -> 250 ms (ceiling 300 ms)',
    );
  });

  it('first raises a capped bandwidth to its ceiling (auto bandwidth: the whole usable link)', () => {
    const policy = predictivePolicy({ maxDowntimeMs: 300, progressTimeout: 150 }, 60 * MiB);
    const r = runMigration({ workload: workloads.neverConverges, policy, context: baseContext() });
    expect(r.outcome).toBe('completed');
    expect(brief(r.actions)).toEqual([`set-bandwidth:${60 * MiB}@20.5`]);
    expect(r.actions[0]?.action.reason).toMatch(/: bandwidth 30\.0 MiB\/s -> 60\.0 MiB\/s$/);
  });

  it('judges again with the new limit once raised, and stops acting when that fits', () => {
    const roomy: PredictivePolicy = { ...predictiveDefault, downtimeCeilingMs: 2000 };
    const r = replay(roomy, never, context({ currentDowntimeMs: 100 }));
    expect(brief(r.actions)).toEqual(['set-downtime:2000@20.5']);
  });

  it('raises the downtime at most twice, each time to what the latest pass needs, then climbs on', () => {
    // Pending bytes that keep doubling every three passes: 10, 20, 40, 80 MiB at 30 MiB/s, dirtying 40 MiB/s.
    const samples = [];
    let at = 17_000;
    let sent = 512 * MiB;
    for (let pass = 2; pass <= 13; pass++) {
      const peak = 10 * MiB * 2 ** Math.floor((pass - 2) / 3);
      const status = { dirtySyncCount: pass, dirtyPagesRate: (40 * MiB) / 4096, mbps: 251.7 };
      samples.push(sample(at, { ...status, remainingBytes: peak, transferredBytes: sent }));
      samples.push(
        sample(at + (peak / 2 / (30 * MiB)) * 1000, {
          ...status,
          remainingBytes: peak / 2,
          transferredBytes: sent + peak / 2,
        }),
      );
      at += (peak / (30 * MiB)) * 1000;
      sent += peak;
    }
    const roomy: PredictivePolicy = { ...predictiveDefault, downtimeCeilingMs: 5000 };
    const r = replay(roomy, samples, context({ currentDowntimeMs: 100 }));
    expect(
      r.actions.map(
        (a) =>
          `${a.action.type}${a.action.type === 'set-downtime' ? `:${a.action.downtimeMs}` : ''}@pass${a.pass - 1}`,
      ),
    ).toEqual(['set-downtime:420@pass3', 'set-downtime:840@pass5', 'abort@pass8']);
    expect(r.actions[2]?.action.reason).toMatch(
      /; downtime already raised 2 times; auto-converge not allowed; post-copy not allowed; pausing the guest not allowed; tried: downtime raised to 420 ms, downtime raised to 840 ms: nothing left to try, aborting$/,
    );
  });

  it('climbs on when a rung does not help: post-copy that did not take, then pause, then abort', () => {
    const r = replay(
      predictiveDefault,
      never,
      context({ currentDowntimeMs: 100, postCopyAllowed: true, pauseAllowed: true }),
    );
    expect(brief(r.actions)).toEqual(['start-post-copy@20.5', 'pause-guest@23.5', 'abort@27']);
    expect(r.actions[2]?.action.reason).toMatch(
      /; tried: post-copy requested, guest paused: nothing left to try, aborting$/,
    );
  });

  it('does nothing in post-copy, nor before the copy starts', () => {
    const samples = [
      sample(100, { status: 'setup', dirtySyncCount: 0 }),
      ...[1, 2, 3, 4, 5, 6].map((n) =>
        sample(n * 1000, { status: 'postcopy-active', dirtySyncCount: n, remainingBytes: 40 * MiB }),
      ),
    ];
    expect(
      replay(predictiveDefault, samples, context({ postCopyAllowed: true, pauseAllowed: true })).actions,
    ).toEqual([]);
  });

  it('aborts a copy that stopped moving once the lowest remaining value is progressTimeout old', () => {
    // KubeVirt's reckoning: whole seconds, strictly more than the timeout.
    const samples = [1000, 2000, 60_000, 152_000, 152_900, 153_000].map((at) =>
      sample(at, {
        dirtySyncCount: 1,
        remainingBytes: at === 1000 ? 300 * MiB : 200 * MiB,
        transferredBytes: 212 * MiB,
      }),
    );
    const r = replay(predictiveDefault, samples);
    expect(brief(r.actions)).toEqual(['abort@153']);
    expect(r.actions[0]?.action.reason).toBe(
      'no progress for 151 s (progress timeout 150 s): remaining 200.0 MiB has not fallen below 200.0 MiB, the lowest seen, at 2.0 s: aborting',
    );
  });
});
