import type { MigrationStatus } from '../agent-contract.ts';
import { cloudpodsDecide, cloudpodsStart, initialCloudpodsState, type CloudpodsState } from './cloudpods.ts';
import { mib } from './format.ts';
import { initialKubevirtState, kubevirtDecide, kubevirtStart, type KubevirtState } from './kubevirt.ts';
import { initialNovaState, novaDecide, novaStart, type NovaState } from './nova.ts';
import type { ConvergencePolicy } from './policies.ts';
import {
  initialPredictiveState,
  predictiveDecide,
  predictiveStart,
  type PredictiveState,
} from './predictive.ts';
import { initialScheduleState, scheduleDecide, scheduleStart, type ScheduleState } from './schedule.ts';
import type {
  ConvergenceAction,
  ConvergenceContext,
  Sample,
  StartContext,
  StartParameters,
} from './types.ts';

/**
 * The convergence engine: one pure function from (policy, state, the latest query-migrate sample, context) to
 * the next state and the actions to apply. The state is plain JSON data (it travels in Temporal activity
 * heartbeats): feed back the state returned, or its JSON round-trip, with the next sample. Polling is the
 * caller's business; every policy works from elapsed time and QEMU's counters, not from call counts.
 */
export type ConvergenceState = KubevirtState | NovaState | ScheduleState | CloudpodsState | PredictiveState;

export interface ConvergenceDecision {
  state: ConvergenceState;
  actions: ConvergenceAction[];
}

export function initialConvergenceState(policy: ConvergencePolicy): ConvergenceState {
  switch (policy.kind) {
    case 'kubevirt':
      return initialKubevirtState();
    case 'nova':
      return initialNovaState();
    case 'schedule':
      return initialScheduleState();
    case 'cloudpods':
      return initialCloudpodsState();
    case 'predictive':
      return initialPredictiveState();
  }
}

/** Initial downtime, bandwidth and capabilities (auto-converge, xbzrle, postcopy-ram) for a policy. */
export function startParameters(policy: ConvergencePolicy, context: StartContext): StartParameters {
  switch (policy.kind) {
    case 'kubevirt':
      return kubevirtStart(policy, context);
    case 'nova':
      return novaStart(policy, context);
    case 'schedule':
      return scheduleStart(policy, context);
    case 'cloudpods':
      return cloudpodsStart(policy, context);
    case 'predictive':
      return predictiveStart(policy, context);
  }
}

function mismatch(policy: ConvergencePolicy, state: ConvergenceState): never {
  throw new Error(`convergence state of a '${state.kind}' policy given with a '${policy.kind}' policy`);
}

/** The next state and actions for one sample. `state` null = the policy's initial state. */
export function decide(
  policy: ConvergencePolicy,
  state: ConvergenceState | null,
  sample: Sample,
  context: ConvergenceContext,
): ConvergenceDecision {
  const current = state ?? initialConvergenceState(policy);
  switch (policy.kind) {
    case 'kubevirt':
      return current.kind === 'kubevirt'
        ? kubevirtDecide(policy, current, sample, context)
        : mismatch(policy, current);
    case 'nova':
      return current.kind === 'nova'
        ? novaDecide(policy, current, sample, context)
        : mismatch(policy, current);
    case 'schedule':
      return current.kind === 'schedule'
        ? scheduleDecide(policy, current, sample, context)
        : mismatch(policy, current);
    case 'cloudpods':
      return current.kind === 'cloudpods'
        ? cloudpodsDecide(policy, current, sample, context)
        : mismatch(policy, current);
    case 'predictive':
      return current.kind === 'predictive'
        ? predictiveDecide(policy, current, sample, context)
        : mismatch(policy, current);
  }
}

/**
 * An operator's force-complete (F10): switch to post-copy when it is allowed (the postcopy-ram capability was
 * set at the start), else pause the guest so the copy finishes. The operator's request is the consent to
 * pause, whatever the policy's pauseAllowed says.
 */
export function forceCompleteAction(
  context: Pick<StartContext, 'postCopyAllowed'>,
  status?: MigrationStatus,
): ConvergenceAction {
  const left = status ? ` with ${mib(status.remainingBytes)} remaining at pass ${status.dirtySyncCount}` : '';
  return context.postCopyAllowed
    ? { type: 'start-post-copy', reason: `operator forced completion${left}: switching to post-copy` }
    : {
        type: 'pause-guest',
        reason: `operator forced completion${left}: post-copy not allowed, pausing the guest so the copy finishes`,
      };
}
