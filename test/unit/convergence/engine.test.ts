import { describe, expect, it } from 'vitest';
import * as convergence from '../../../domain/convergence/index.ts';
import {
  decide,
  forceCompleteAction,
  initialConvergenceState,
  startParameters,
} from '../../../domain/convergence/engine.ts';
import {
  cloudpodsDefault,
  convergenceTypes,
  enginePolicyFor,
  kubevirtDefault,
  novaDefault,
  predictiveDefault,
  predictivePolicy,
  type ConvergencePolicy,
} from '../../../domain/convergence/policies.ts';
import { ovirtSchedules } from '../../../domain/convergence/schedule.ts';
import type { StartContext } from '../../../domain/convergence/types.ts';
import { context, replay, sample } from './helpers.ts';
import { baseContext, MiB, runMigration, workloads } from './qemu-model.ts';
import { convergingTrace, neverConvergingTrace, samplesFrom } from './recorded.ts';

const policies: Record<string, ConvergencePolicy> = {
  kubevirt: kubevirtDefault,
  nova: novaDefault,
  novaForceComplete: { ...novaDefault, timeoutAction: 'force-complete' },
  cloudpods: cloudpodsDefault,
  predictive: predictiveDefault,
  predictiveWithBandwidthHeadroom: predictivePolicy({ maxDowntimeMs: 300, progressTimeout: 150 }, 60 * MiB),
  ...Object.fromEntries(Object.entries(ovirtSchedules).map(([name, p]) => [`ovirt:${name}`, p])),
};

const permissionSets: Partial<StartContext>[] = [
  {},
  { postCopyAllowed: true },
  { pauseAllowed: true },
  { autoConvergeAllowed: true },
  { postCopyAllowed: true, pauseAllowed: true, autoConvergeAllowed: true },
];

/** Every policy x workload x permission set, in a closed loop long enough for Nova's 1600 s timeout. */
const runs = Object.entries(policies).flatMap(([policyName, policy]) =>
  Object.entries(workloads).flatMap(([workloadName, workload]) =>
    permissionSets.map((perm) => ({
      name: `${policyName} / ${workloadName} / ${JSON.stringify(perm)}`,
      policy,
      workload,
      perm,
      result: runMigration({ workload, policy, context: baseContext(perm), maxMs: 1_700_000 }),
    })),
  ),
);

describe('the convergence engine', () => {
  it('exposes one entry point for every policy (index re-exports)', () => {
    expect(typeof convergence.decide).toBe('function');
    expect(typeof convergence.predictFinish).toBe('function');
    expect(convergence.kubevirtDefault).toBe(kubevirtDefault);
    expect(convergence.novaDefault).toBe(novaDefault);
  });

  it("kubevirtDefault and novaDefault are the anchors' shipped settings", () => {
    expect(kubevirtDefault).toEqual({
      kind: 'kubevirt',
      completionTimeoutPerGiB: 150,
      progressTimeoutSeconds: 150,
      initialDowntimeMs: 900,
    });
    expect(novaDefault).toEqual({
      kind: 'nova',
      downtimeMs: 500,
      downtimeSteps: 10,
      downtimeDelaySecondsPerGiB: 75,
      completionTimeoutSecondsPerGiB: 800,
      timeoutAction: 'abort',
      permitAutoConverge: false,
    });
  });

  it('maps every F13 policy type to its engine policy in one place', () => {
    const options = { maxDowntimeMs: 300, progressTimeout: 150 };
    expect(enginePolicyFor('minimal-downtime', options)).toEqual(ovirtSchedules['minimal-downtime']);
    expect(enginePolicyFor('post-copy', options)).toEqual(ovirtSchedules['post-copy']);
    expect(enginePolicyFor('suspend-workload', options)).toEqual(ovirtSchedules['suspend-workload']);
    expect(enginePolicyFor('large-vms', options)).toEqual(ovirtSchedules['large-vms']);
    expect(enginePolicyFor('predictive', options)).toEqual(predictiveDefault);
    expect(
      enginePolicyFor('schedule', {
        ...options,
        name: 'mine',
        schedule: [{ afterPass: 2, action: 'abort' }],
      }),
    ).toMatchObject({ kind: 'schedule', name: 'mine', initialDowntimeMs: 300 });
    expect(() => enginePolicyFor('schedule', options)).toThrow(/needs a schedule/);
    expect(convergenceTypes).toHaveLength(6);
    // A copy: nobody can change the shipped schedules through a migration's policy.
    expect(enginePolicyFor('large-vms', options)).not.toBe(ovirtSchedules['large-vms']);
  });

  it('starts from the initial state when given null, and refuses a state of another policy', () => {
    const s = sample(500);
    expect(decide(predictiveDefault, null, s, context())).toEqual(
      decide(predictiveDefault, initialConvergenceState(predictiveDefault), s, context()),
    );
    expect(() => decide(kubevirtDefault, initialConvergenceState(novaDefault), s, context())).toThrow(
      "convergence state of a 'nova' policy given with a 'kubevirt' policy",
    );
  });

  it.each(Object.entries(policies))(
    '%s: the state survives JSON round trips with the same decisions',
    (_name, policy) => {
      for (const workload of Object.values(workloads)) {
        for (const perm of [{}, { postCopyAllowed: true, pauseAllowed: true, autoConvergeAllowed: true }]) {
          const options = { workload, policy, context: baseContext(perm), maxMs: 400_000 };
          const plain = runMigration(options);
          const json = runMigration({ ...options, jsonState: true });
          expect(json.actions).toEqual(plain.actions);
          expect(json.outcome).toBe(plain.outcome);
          expect(json.states).toEqual(plain.states);
          for (const state of plain.states) expect(JSON.parse(JSON.stringify(state))).toEqual(state);
        }
      }
      for (const trace of [convergingTrace, neverConvergingTrace]) {
        const ctx = context({ postCopyAllowed: true, pauseAllowed: true });
        expect(replay(policy, samplesFrom(trace), ctx, { json: true })).toEqual(
          replay(policy, samplesFrom(trace), ctx),
        );
      }
    },
  );

  it('every action of every policy carries a reason with the numbers that triggered it', () => {
    const actions = runs.flatMap((r) => r.result.actions.map((a) => ({ run: r.name, ...a })));
    expect(actions.length).toBeGreaterThan(100);
    for (const { run, action } of actions) {
      expect(action.reason, run).toMatch(/\d/);
      expect(action.reason.length, run).toBeGreaterThan(30);
      if (action.type === 'set-downtime') expect(action.reason, run).toContain(`${action.downtimeMs} ms`);
    }
    const types = new Set(actions.map((a) => a.action.type));
    expect(types).toEqual(
      new Set(['set-downtime', 'set-bandwidth', 'raise-throttle', 'start-post-copy', 'pause-guest', 'abort']),
    );
  });

  it('never starts post-copy or pauses the guest when that is not allowed', () => {
    for (const { name, perm, result } of runs) {
      const types = result.actions.map((a) => a.action.type);
      if (!perm.postCopyAllowed) expect(types, name).not.toContain('start-post-copy');
      if (!perm.pauseAllowed) expect(types, name).not.toContain('pause-guest');
      if (!perm.autoConvergeAllowed) expect(types, name).not.toContain('raise-throttle');
    }
  });

  it('never asks for capabilities that are not allowed', () => {
    for (const policy of Object.values(policies)) {
      for (const perm of permissionSets) {
        const start = startParameters(policy, baseContext(perm));
        if (!perm.autoConvergeAllowed) expect(start.autoConverge).toBe(false);
        expect(start.postCopy).toBe(perm.postCopyAllowed ?? false);
        expect(start.downtimeMs).toBeGreaterThan(0);
        expect(start.bandwidthBytes).toBe(30 * MiB);
        expect(start.reason).toMatch(/\d+ ms/);
      }
    }
  });

  it('takes no action after an abort, nor after completion', () => {
    for (const { name, result } of runs) {
      const abortIndex = result.actions.findIndex((a) => a.action.type === 'abort');
      if (abortIndex >= 0) expect(abortIndex, name).toBe(result.actions.length - 1);
    }
    for (const policy of Object.values(policies)) {
      const done = sample(10_000, { status: 'completed', dirtySyncCount: 9 });
      expect(
        decide(policy, null, done, context({ postCopyAllowed: true, pauseAllowed: true })).actions,
      ).toEqual([]);
    }
  });

  it('finishes the never-converging guest faster than the anchors when post-copy is allowed', () => {
    const end = (name: string) =>
      runs.find((r) => r.name === `${name} / neverConverges / ${JSON.stringify({ postCopyAllowed: true })}`)
        ?.result;
    expect(end('predictive')?.outcome).toBe('completed');
    expect(end('predictive')?.endMs).toBeLessThan(25_000);
    expect(end('kubevirt')?.endMs).toBeGreaterThan(150_000);
    expect(end('nova')?.outcome).toBe('aborted');
  });
});

describe('forceCompleteAction (operator, F10)', () => {
  it('switches to post-copy when allowed', () => {
    expect(
      forceCompleteAction(
        { postCopyAllowed: true },
        sample(1000, { remainingBytes: 48 * MiB, dirtySyncCount: 7 }).status,
      ),
    ).toEqual({
      type: 'start-post-copy',
      reason: 'operator forced completion with 48.0 MiB remaining at pass 7: switching to post-copy',
    });
  });

  it('else pauses the guest (the operator consents to the disruption)', () => {
    expect(forceCompleteAction({ postCopyAllowed: false })).toEqual({
      type: 'pause-guest',
      reason: 'operator forced completion: post-copy not allowed, pausing the guest so the copy finishes',
    });
  });
});
