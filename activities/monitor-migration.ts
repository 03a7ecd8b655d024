import { ApplicationFailure, Context } from '@temporalio/activity';
import type { Client } from '@temporalio/client';
import type { Db } from '../db/client.ts';
import { recordEvent } from '../db/inventory.ts';
import { saveProgress } from '../db/migration-store.ts';
import type { MigrationStatus } from '../domain/agent-contract.ts';
import {
  progressOf,
  terminalMigrationStatuses,
  type LiveMigrationTimings,
} from '../domain/live-migration.ts';
import { initialQuicklyFinishState, quicklyFinishStep } from '../domain/quickly-finish.ts';
import { progressSignal } from '../workflows/live-migrate-messages.ts';
import { renewSlotSignal } from '../workflows/migration-slots-messages.ts';
import { AgentClient } from './agent-client.ts';
import { agentCall } from './agent-errors.ts';

export interface MonitorInput {
  migrationId: string;
  guestId: string;
  sourceAgentUrl: string;
  downtimeLimitMs: number;
  quicklyFinish: boolean;
  timings: LiveMigrationTimings;
  /** The cluster's slots workflow, whose lease this long-running activity keeps renewed. */
  slot?: { workflowId: string; leaseMs: number };
}

export interface MonitorDeps {
  db: Db;
  agentToken: string;
  temporal?: Client;
}

/**
 * Polls the source's migration status every pollIntervalMs from ONE activity (a workflow timer loop would
 * fill the history), heartbeating each sample so cancellation reaches us and a dead worker is noticed.
 */
export async function monitorMigration(deps: MonitorDeps, input: MonitorInput): Promise<MigrationStatus> {
  const ctx = Context.current();
  const agent = new AgentClient(input.sourceAgentUrl, deps.agentToken, 10_000);
  const execution = ctx.info.workflowExecution;
  const workflow = execution && deps.temporal?.workflow.getHandle(execution.workflowId, execution.runId);
  let quicklyFinish = initialQuicklyFinishState;
  let downtimeLimitMs = input.downtimeLimitMs;
  let lastSignalAt = 0;
  let lastSaveAt = 0;
  let lastRenewAt = Date.now();
  const slots = input.slot && deps.temporal?.workflow.getHandle(input.slot.workflowId);

  for (;;) {
    const status = await agentCall(() => agent.migrationStatus(input.guestId));
    if (status.migrationId !== input.migrationId) {
      throw ApplicationFailure.nonRetryable(
        `source reports migration ${status.migrationId ?? 'none'} (status ${status.status}), not ${input.migrationId}`,
        'MigrationLost',
      );
    }
    const now = Date.now();
    const progress = progressOf(status, now);
    ctx.heartbeat(progress);
    const done = terminalMigrationStatuses.has(status.status);
    if (workflow && (done || now - lastSignalAt >= input.timings.progressSignalIntervalMs)) {
      await workflow.signal(progressSignal, progress);
      lastSignalAt = now;
    }
    if (done || now - lastSaveAt >= input.timings.progressSaveIntervalMs) {
      await saveProgress(deps.db, input.migrationId, { ...progress });
      lastSaveAt = now;
    }
    if (done) return status;
    if (slots && input.slot && now - lastRenewAt >= input.timings.slotRenewIntervalMs) {
      await slots.signal(renewSlotSignal, { migrationId: input.migrationId, leaseMs: input.slot.leaseMs });
      lastRenewAt = now;
    }

    if (input.quicklyFinish) {
      const decision = quicklyFinishStep(quicklyFinish, status, downtimeLimitMs);
      quicklyFinish = decision.state;
      if (decision.setDowntimeMs !== undefined) {
        await agentCall(() =>
          agent.setMigrationParameters(input.guestId, { downtimeLimitMs: decision.setDowntimeMs }),
        );
        downtimeLimitMs = decision.setDowntimeMs;
        await recordEvent(deps.db, {
          subjectKind: 'migration',
          subjectId: input.migrationId,
          type: 'quickly_finish',
          message: decision.reason ?? 'downtime limit raised',
          data: { downtimeLimitMs, sample: { ...status } },
        });
      }
    }
    await ctx.sleep(input.timings.pollIntervalMs);
  }
}
