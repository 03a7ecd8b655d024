import type { AgentCredentials } from './agent-credentials.ts';
import { ApplicationFailure, Context } from '@temporalio/activity';
import type { Client } from '@temporalio/client';
import type { Db } from '../db/client.ts';
import { recordEvent } from '../db/inventory.ts';
import { saveProgress } from '../db/migration-store.ts';
import type { MigrationStatus } from '../domain/agent-contract.ts';
import { decide, type ConvergenceState } from '../domain/convergence/engine.ts';
import type { ConvergencePolicy } from '../domain/convergence/policies.ts';
import type { StartContext } from '../domain/convergence/types.ts';
import {
  monitorAgentTimeoutMs,
  progressOf,
  terminalMigrationStatuses,
  type LiveMigrationTimings,
} from '../domain/live-migration.ts';
import { initialQuicklyFinishState, quicklyFinishStep } from '../domain/quickly-finish.ts';
import { AgentClient } from './agent-client.ts';
import { agentCall } from './agent-errors.ts';
import { applyConvergenceAction, type AppliedState } from './convergence-actions.ts';

export interface MonitorInput {
  migrationId: string;
  guestId: string;
  sourceAgentUrl: string;
  downtimeLimitMs: number;
  quicklyFinish: boolean;
  timings: LiveMigrationTimings;
  /** The convergence engine's policy; absent in runs started before the engine drove migrations. */
  convergence?: { policy: ConvergencePolicy; context: StartContext; bandwidthBytes: number };
}

export interface MonitorResult extends MigrationStatus {
  /** Set when the policy gave up: the reason, with its numbers. */
  abortReason?: string | null;
  pausedGuest?: boolean;
  postCopyStarted?: boolean;
}

export interface MonitorDeps {
  db: Db;
  agentCredentials: AgentCredentials;
  temporal?: Client;
}

/** Carried in heartbeats so a retried monitor (new worker) continues the policy where the last one stopped. */
interface MonitorCheckpoint {
  engine: ConvergenceState | null;
  applied: AppliedState;
}

/**
 * Polls the source's migration status every pollIntervalMs from ONE activity (a workflow timer loop, or a
 * signal per sample, would fill the history), heartbeating each sample so cancellation reaches us and a dead
 * worker is noticed; progress goes to the migration row, never into the workflow's history. Each sample goes
 * through the convergence engine and its actions are carried out, checkpointed and recorded.
 */
export async function monitorMigration(deps: MonitorDeps, input: MonitorInput): Promise<MonitorResult> {
  const ctx = Context.current();
  // Well inside the heartbeat timeout: one slow poll must not let a retried monitor act beside this one.
  const agentTimeoutMs = monitorAgentTimeoutMs(input.timings.activityHeartbeatTimeoutMs);
  const agent = new AgentClient(input.sourceAgentUrl, deps.agentCredentials, agentTimeoutMs);
  const sampleMs = sampleWaitMs(input.timings.pollIntervalMs, agentTimeoutMs);
  const resumed = ctx.info.heartbeatDetails as { checkpoint?: MonitorCheckpoint } | undefined;
  let checkpoint: MonitorCheckpoint = resumed?.checkpoint ?? {
    engine: null,
    applied: {
      downtimeMs: input.downtimeLimitMs,
      bandwidthBytes: input.convergence?.bandwidthBytes ?? 0,
      pausedGuest: false,
      postCopyStarted: false,
      abortReason: null,
    },
  };
  let quicklyFinish = initialQuicklyFinishState;
  let lastSaveAt = 0;
  const firstSeenAt = Date.now();
  let progress: ReturnType<typeof progressOf> | null = null;
  /** Every applied action is checkpointed at once, so a retried monitor never forgets it. */
  const checkpointed = (next: MonitorCheckpoint) => {
    checkpoint = next;
    ctx.heartbeat({ progress, checkpoint });
  };
  /** A monitor whose heartbeat timed out has been replaced: it must not act beside its successor. */
  const stillInCharge = () => {
    if (ctx.cancellationSignal.aborted) throw ctx.cancellationSignal.reason ?? new Error('monitor replaced');
  };

  const report = async (status: MigrationStatus, force: boolean) => {
    const now = Date.now();
    progress = progressOf(status, now);
    ctx.heartbeat({ progress, checkpoint });
    if (force || now - lastSaveAt >= input.timings.progressSaveIntervalMs) {
      await saveProgress(deps.db, input.migrationId, { ...progress });
      lastSaveAt = now;
    }
  };

  let previous: MigrationStatus['status'] | null = null;
  for (;;) {
    // A long poll: the agent answers the moment QEMU reports a change (the completion above all), else with
    // a fresh sample after sampleMs, so the policy still sees one sample per poll interval.
    const askedAt = Date.now();
    const since: MigrationStatus['status'] | null = previous;
    const status: MigrationStatus = await agentCall(() =>
      since === null
        ? agent.migrationStatus(input.guestId)
        : agent.migrationStatus(input.guestId, { waitMs: sampleMs, unless: since }),
    );
    previous = status.status;
    if (status.migrationId !== input.migrationId) {
      throw ApplicationFailure.nonRetryable(
        `source reports migration ${status.migrationId ?? 'none'} (status ${status.status}), not ${input.migrationId}`,
        'MigrationLost',
      );
    }
    const done = terminalMigrationStatuses.has(status.status);
    await report(status, done);
    if (done) return resultOf(status, checkpoint.applied);
    stillInCharge();

    if (input.convergence) {
      await converge(input, agent, deps.db, status, checkpoint, firstSeenAt, checkpointed, stillInCharge);
      if (checkpoint.applied.abortReason !== null) {
        await report(status, true);
        return resultOf(status, checkpoint.applied);
      }
    } else if (input.quicklyFinish) {
      const decision = quicklyFinishStep(quicklyFinish, status, checkpoint.applied.downtimeMs);
      quicklyFinish = decision.state;
      if (decision.setDowntimeMs !== undefined) {
        await agentCall(() =>
          agent.setMigrationParameters(input.guestId, { downtimeLimitMs: decision.setDowntimeMs }),
        );
        checkpointed({
          ...checkpoint,
          applied: { ...checkpoint.applied, downtimeMs: decision.setDowntimeMs },
        });
        await recordEvent(deps.db, {
          subjectKind: 'migration',
          subjectId: input.migrationId,
          type: 'quickly_finish',
          message: decision.reason ?? 'downtime limit raised',
          data: { downtimeLimitMs: decision.setDowntimeMs, sample: { ...status } },
        });
      }
    }

    // The next read is held, so it paces the samples; only an unchanged answer that came early (an agent that
    // does not hold reads) waits out the interval here.
    const early = sampleMs - (Date.now() - askedAt);
    if (early > 0 && since !== null && status.status === since) await ctx.sleep(early);
  }
}

/** How long one held status read waits: the poll interval, but never near the agent call's own timeout. */
export function sampleWaitMs(pollIntervalMs: number, agentTimeoutMs: number): number {
  return Math.max(0, Math.min(pollIntervalMs, Math.floor(agentTimeoutMs / 2)));
}

/** QEMU's own figures (its measured downtime, not the limit we set) plus what the policy did. */
function resultOf(status: MigrationStatus, applied: AppliedState): MonitorResult {
  return {
    ...status,
    abortReason: applied.abortReason,
    pausedGuest: applied.pausedGuest,
    postCopyStarted: applied.postCopyStarted || status.postCopyStarted === true,
  };
}

/**
 * One engine step: decide on the sample, carry out each action, checkpoint it, record it with the numbers
 * behind it. The engine's own state is checkpointed with the first action (or at the end when there is none).
 */
async function converge(
  input: MonitorInput,
  agent: AgentClient,
  db: Db,
  status: MigrationStatus,
  checkpoint: MonitorCheckpoint,
  firstSeenAt: number,
  checkpointed: (next: MonitorCheckpoint) => void,
  stillInCharge: () => void,
): Promise<void> {
  const convergence = input.convergence!;
  // QEMU's own clock since migrate, so a retried monitor keeps the policy's deadlines.
  const atMs = status.totalTimeMs ?? Date.now() - firstSeenAt;
  const decision = decide(
    convergence.policy,
    checkpoint.engine,
    { atMs, status },
    {
      ...convergence.context,
      currentDowntimeMs: checkpoint.applied.downtimeMs,
      currentBandwidthBytes: checkpoint.applied.bandwidthBytes,
    },
  );
  let applied = checkpoint.applied;
  for (const action of decision.actions) {
    stillInCharge();
    applied = await applyConvergenceAction(agent, input.guestId, action, applied);
    checkpointed({ engine: decision.state, applied });
    await recordEvent(db, {
      subjectKind: 'migration',
      subjectId: input.migrationId,
      type: `convergence_${action.type.replaceAll('-', '_')}`,
      level: action.type === 'abort' ? 'error' : action.type === 'pause-guest' ? 'warning' : 'info',
      message: action.reason,
      data: { action: { ...action }, policy: convergence.policy.kind, sample: { atMs, ...status } },
    });
    if (action.type === 'abort') break;
  }
  if (decision.actions.length === 0) checkpointed({ engine: decision.state, applied });
}
