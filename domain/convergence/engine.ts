import type { MigrationStatus } from '../agent-contract.ts';
import { cloudpodsDecide, cloudpodsStart, initialCloudpodsState, type CloudpodsState } from './cloudpods.ts';
import { completionDeadlineSeconds, migrationDataGigabytes } from '../migration-config.ts';
import { initialQuicklyFinishState, quicklyFinishStep, type QuicklyFinishState } from '../quickly-finish.ts';
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
 *
 * On top of the policy, the engine itself applies two rules the start context asks for (docs/convergence.md):
 * - the completion deadline (context.completionTimeoutPerGiB, KubeVirt's rule), under every policy but
 *   'kubevirt', which runs the same rule from its own data;
 * - quickly-finish (context.quicklyFinish, Cloudpods' rule), under every policy but a 'cloudpods' one that
 *   already runs it.
 * The policy decides first and its actions win: on a sample where the policy pauses the guest, switches to
 * post-copy or aborts, the engine adds nothing; where it sets the downtime, quickly-finish does not.
 * A context without either (every plan frozen before they existed) decides exactly as the policy alone, with
 * the policy's state unchanged.
 */
export type PolicyState = KubevirtState | NovaState | ScheduleState | CloudpodsState | PredictiveState;

/** What the engine tracks for its own rules; present only when the context turns one of them on. */
export interface EngineRulesState {
  /** The guest was paused (by the deadline or by the policy): the deadline is doubled, as KubeVirt does. */
  paused: boolean;
  /** The policy asked for post-copy: no deadline any more (KubeVirt: nothing to track in post-copy). */
  postCopy: boolean;
  /** The engine switched to post-copy, or the engine or the policy aborted: nothing more to do. */
  finished: boolean;
  quicklyFinish: QuicklyFinishState;
}

export type ConvergenceState = PolicyState & { engine?: EngineRulesState };

export interface ConvergenceDecision {
  state: ConvergenceState;
  actions: ConvergenceAction[];
}

export function initialConvergenceState(policy: ConvergencePolicy): PolicyState {
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

function mismatch(policy: ConvergencePolicy, state: PolicyState): never {
  throw new Error(`convergence state of a '${state.kind}' policy given with a '${policy.kind}' policy`);
}

function policyDecide(
  policy: ConvergencePolicy,
  current: PolicyState,
  sample: Sample,
  context: ConvergenceContext,
): { state: PolicyState; actions: ConvergenceAction[] } {
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

/** The engine's completion deadline applies: a positive completionTimeoutPerGiB, and not KubeVirt's own policy. */
export const engineDeadlineApplies = (
  policy: ConvergencePolicy,
  context: Pick<StartContext, 'completionTimeoutPerGiB'>,
): boolean => (context.completionTimeoutPerGiB ?? 0) > 0 && policy.kind !== 'kubevirt';

/** The engine's quickly-finish applies: asked for, and not already run by a Cloudpods policy. */
export const engineQuicklyFinishApplies = (
  policy: ConvergencePolicy,
  context: Pick<StartContext, 'quicklyFinish'>,
): boolean => context.quicklyFinish === true && !(policy.kind === 'cloudpods' && policy.quicklyFinish);

/**
 * KubeVirt's acceptableCompletionTime (virt-launcher live-migration-source.go, newMigrationMonitor):
 * completionTimeoutPerGiB x getVMIMigrationDataSize, i.e. memory plus block-migrated disks in decimal GB rounded
 * up (resource.Giga). 0 = no deadline.
 */
export function engineCompletionDeadline(context: StartContext): { seconds: number; dataGb: number } {
  const dataGb = migrationDataGigabytes(context.memoryBytes, context.localDiskBytes);
  return {
    seconds: completionDeadlineSeconds(
      { completionTimeoutPerGiB: context.completionTimeoutPerGiB ?? 0 },
      context.memoryBytes,
      context.localDiskBytes,
    ),
    dataGb,
  };
}

const initialEngineRules = (): EngineRulesState => ({
  paused: false,
  postCopy: false,
  finished: false,
  quicklyFinish: { ...initialQuicklyFinishState },
});

const isTerminal = (a: ConvergenceAction) =>
  a.type === 'pause-guest' || a.type === 'start-post-copy' || a.type === 'abort';

/**
 * What the actions did to the migration, as the engine's rules see it. The policy's own post-copy leaves the
 * policy in charge (a switch that does not take is followed by its next step, as vdsm does).
 */
function noted(
  rules: EngineRulesState,
  actions: readonly ConvergenceAction[],
  by: 'policy' | 'engine',
): EngineRulesState {
  let next = rules;
  for (const a of actions) {
    if (a.type === 'pause-guest') next = { ...next, paused: true };
    if (a.type === 'abort') next = { ...next, finished: true };
    if (a.type === 'start-post-copy') {
      next = by === 'policy' ? { ...next, postCopy: true } : { ...next, finished: true };
    }
  }
  return next;
}

/**
 * KubeVirt's rule past the deadline (live-migration-source.go, handleLegacyConvergence, shouldTriggerTimeout,
 * shouldAssistMigrationToComplete): whole elapsed seconds > the deadline, and workload disruption allowed
 * (allowWorkloadDisruption, our pauseAllowed), not yet paused: post-copy when allowed, else pause the guest and
 * double the deadline. Otherwise past the (doubled) deadline: abort. In post-copy: nothing.
 */
function deadlineAction(
  rules: EngineRulesState,
  sample: Sample,
  context: ConvergenceContext,
): ConvergenceAction | null {
  const { seconds, dataGb } = engineCompletionDeadline(context);
  if (seconds <= 0) return null;
  const deadline = rules.paused ? seconds * 2 : seconds;
  const elapsed = Math.floor(sample.atMs / 1000);
  if (elapsed <= deadline) return null;
  const disks = context.localDiskBytes > 0 ? ` + ${mib(context.localDiskBytes)} of local disks` : '';
  const head = rules.paused
    ? `${elapsed} s elapsed > doubled completion deadline ${deadline} s (the guest is paused)`
    : `${elapsed} s elapsed > completion deadline ${deadline} s (completionTimeoutPerGiB ` +
      `${context.completionTimeoutPerGiB ?? 0} s x ${dataGb} GB: ${mib(context.memoryBytes)} of memory${disks}, ` +
      `decimal GB rounded up)`;
  const remaining = `remaining ${mib(sample.status.remainingBytes)}`;
  if (!rules.paused && context.pauseAllowed) {
    if (context.postCopyAllowed) {
      return { type: 'start-post-copy', reason: `${head}, ${remaining}: switching to post-copy` };
    }
    return {
      type: 'pause-guest',
      reason:
        `${head}, ${remaining}, post-copy not allowed: pausing the guest so the copy finishes; deadline ` +
        `doubled to ${seconds * 2} s`,
    };
  }
  const why = rules.paused ? '' : ', and workload disruption (post-copy or pausing the guest) is not allowed';
  return { type: 'abort', reason: `${head}, ${remaining}${why}: aborting` };
}

function withoutEngineRules(state: ConvergenceState): PolicyState {
  if (state.engine === undefined) return state;
  const policyState = { ...state };
  delete policyState.engine;
  return policyState;
}

/** The next state and actions for one sample. `state` null = the policy's initial state. */
export function decide(
  policy: ConvergencePolicy,
  state: ConvergenceState | null,
  sample: Sample,
  context: ConvergenceContext,
): ConvergenceDecision {
  const current: ConvergenceState = state ?? initialConvergenceState(policy);
  const deadlineOn = engineDeadlineApplies(policy, context);
  const quicklyFinishOn = engineQuicklyFinishApplies(policy, context);
  if (!deadlineOn && !quicklyFinishOn)
    return policyDecide(policy, withoutEngineRules(current), sample, context);

  const rules = current.engine ?? initialEngineRules();
  if (rules.finished) return { state: current, actions: [] };
  const decision = policyDecide(policy, withoutEngineRules(current), sample, context);
  const actions = [...decision.actions];
  let next = noted(rules, actions, 'policy');
  const active = sample.status.status === 'active';

  if (deadlineOn && active && !next.postCopy && !next.finished && !actions.some(isTerminal)) {
    const action = deadlineAction(next, sample, context);
    if (action) {
      actions.push(action);
      next = noted(next, [action], 'engine');
    }
  }
  if (quicklyFinishOn && active && !next.paused && !next.postCopy && !next.finished) {
    const step = quicklyFinishStep(next.quicklyFinish, sample.status, context.currentDowntimeMs);
    next = { ...next, quicklyFinish: step.state };
    if (step.setDowntimeMs !== undefined && !actions.some((a) => a.type === 'set-downtime')) {
      actions.push({
        type: 'set-downtime',
        downtimeMs: step.setDowntimeMs,
        reason: `quickly-finish: ${step.reason ?? `downtime ${context.currentDowntimeMs} -> ${step.setDowntimeMs} ms`}`,
      });
    }
  }
  return { state: { ...decision.state, engine: next }, actions };
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
