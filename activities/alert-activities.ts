import { log } from '@temporalio/activity';
import type { Client } from '@temporalio/client';
import { findMigrationAlert, updateMigrationAlert } from '../db/alert-store.ts';
import type { Db } from '../db/client.ts';
import { recordEvent, recordEventsInOrder, type NewEvent } from '../db/inventory.ts';
import { planAlertMoves } from '../domain/alert-planner.ts';
import { triggerRequester, type Requester } from '../domain/requester.ts';
import { liveMigrationWorkflowId } from '../domain/workflow-ids.ts';
import {
  alertCycleEvents,
  batchStartEvents,
  type AlertCyclePlan,
  type AlertMove,
  type RecordedMove,
} from '../domain/alert-events.ts';
import { recordRunMigration, recordRunMigrations } from '../api/pending-migration.ts';
import type { AlertMetricsReader } from './alert-metrics.ts';
import { loadAlertSnapshot } from './alert-snapshot.ts';

export interface AlertActivityDeps {
  db: Db;
  liveness: { onlineHostIds(): Promise<Set<string>> };
  temporal?: Client;
  metrics?: AlertMetricsReader;
}

export type AlertEvent = Omit<NewEvent, 'subjectKind' | 'subjectId'>;

/** The I/O of an alert cycle: read the world, record what the cycle decided, record each guest's migration. */
export function alertActivities(deps: AlertActivityDeps) {
  return {
    /**
     * Reads the rule, the inventory and the metrics, plans (domain/alert-planner.ts), and records what the plan
     * says that needs no lock: hosts whose data went missing or came back, and guests no target can take. Null
     * when the rule is gone. Events carry keys made from the cycle's key, so a retry records nothing twice.
     */
    async planAlertCycle(input: { ruleId: string; cycleKey: string }): Promise<AlertCyclePlan | null> {
      if (!deps.metrics) throw new Error('planAlertCycle needs an InfluxDB metrics reader');
      const rule = await findMigrationAlert(deps.db, input.ruleId);
      if (!rule) return null;
      const snapshot = await loadAlertSnapshot(
        { db: deps.db, metrics: deps.metrics, liveness: deps.liveness },
        rule,
        new Date(),
      );
      const planning = performance.now();
      const plan = planAlertMoves(snapshot.input);
      const planMs = Math.round(performance.now() - planning);
      const { cyclePlan, events, hostsWithoutData } = alertCycleEvents({
        rule,
        plan,
        hosts: snapshot.hosts,
        guests: snapshot.guests,
        cycleKey: input.cycleKey,
      });
      const recording = performance.now();
      await recordRuleEvents(rule.id, events);
      await updateMigrationAlert(deps.db, rule.id, { hostsWithoutData });
      log.info('alert plan', {
        rule: rule.name,
        moves: cyclePlan.moves.length,
        events: events.length,
        readMs: snapshot.readMs,
        planMs,
        recordMs: Math.round(performance.now() - recording),
      });
      return cyclePlan;
    },

    async recordAlertEvent(input: { ruleId: string; event: AlertEvent }): Promise<void> {
      await recordEvent(deps.db, { subjectKind: 'rule', subjectId: input.ruleId, ...input.event });
    },

    /**
     * Records the move's migration as pending (trigger `alert`), under the guest's migration lock. A retry finds
     * the row it made before. A guest that started migrating since the plan is refused, with the reason.
     */
    async recordAlertMigration(input: RecordAlertMigrationInput): Promise<RecordedAlertMigration> {
      return recordAlertMigration(input, await requesterOf(input.ruleId));
    },

    /**
     * Every move of a cycle at once, each as recordAlertMigration records it: one activity and a handful of
     * queries for fifty moves (api/pending-migration.ts, recordRunMigrations). A retry finds the rows it made before.
     */
    async recordAlertMigrations(input: AlertBatch): Promise<RecordedAlertMigration[]> {
      return recordMoves(input);
    },

    /**
     * A batch's start in one step: its migrations recorded as recordAlertMigrations does, then their `migrating`
     * (or, refused, `migrate_fail`) events. A retry finds the rows and the events it made before.
     */
    async recordAlertBatch(input: AlertBatch): Promise<RecordedAlertMigration[]> {
      const recorded = await recordMoves(input);
      const moves = input.moves.map(({ move }) => move);
      await recordRuleEvents(input.ruleId, batchStartEvents(moves, recorded, input.cycleKey));
      return recorded;
    },

    /** Several events of one rule, in order; each with its dedupe key, so a retry records none twice. */
    async recordAlertEvents(input: { ruleId: string; events: AlertEvent[] }): Promise<void> {
      await recordRuleEvents(input.ruleId, input.events);
    },
  };

  /** A rule's events in order, in one statement: each carries its dedupe key, so a retry records none twice. */
  async function recordRuleEvents(ruleId: string, events: readonly AlertEvent[]): Promise<void> {
    await recordEventsInOrder(
      deps.db,
      events.map((event) => ({ subjectKind: 'rule', subjectId: ruleId, ...event })),
    );
  }

  async function recordMoves(input: AlertBatch): Promise<RecordedAlertMigration[]> {
    if (!deps.temporal) throw new Error('recording alert migrations needs a Temporal client');
    const requestedBy = await requesterOf(input.ruleId);
    return recordRunMigrations(
      deps.db,
      deps.temporal,
      input.cycleKey,
      input.moves.map(({ move, workflowId }) => ({
        guest: { id: move.guestId, name: move.guestName },
        row: alertMigrationRow(
          { ruleId: input.ruleId, cycleKey: input.cycleKey, move, workflowId },
          requestedBy,
        ),
      })),
    );
  }

  /** Who a rule's migrations are requested by, read once per activity: the rule by name, or by id once deleted. */
  async function requesterOf(ruleId: string): Promise<Requester> {
    const rule = await findMigrationAlert(deps.db, ruleId);
    return triggerRequester('alert', rule?.name ?? ruleId);
  }

  async function recordAlertMigration(
    input: RecordAlertMigrationInput,
    requestedBy: Requester,
  ): Promise<RecordedAlertMigration> {
    if (!deps.temporal) throw new Error('recordAlertMigration needs a Temporal client');
    return recordRunMigration(
      deps.db,
      deps.temporal,
      { id: input.move.guestId, name: input.move.guestName },
      input.cycleKey,
      alertMigrationRow(input, requestedBy),
    );
  }
}

/** The row of an alert move's migration: live, from the plan's source to its target, triggered by the rule. */
function alertMigrationRow(input: RecordAlertMigrationInput, requestedBy: Requester) {
  const { move } = input;
  return {
    kind: 'live' as const,
    sourceHostId: move.fromHostId,
    trigger: 'alert' as const,
    options: { preferHost: move.toHostId, alertRule: input.ruleId, alertCycle: input.cycleKey },
    workflowId: input.workflowId ?? liveMigrationWorkflowId(move.guestId),
    requestedBy,
  };
}

export interface RecordAlertMigrationInput {
  ruleId: string;
  cycleKey: string;
  move: AlertMove;
  /** The child run's id as the workflow starts it; absent in cycles from before ids carried names. */
  workflowId?: string;
}

export type RecordedAlertMigration = RecordedMove;

/** A cycle's moves with the ids their child runs start under. */
export interface AlertBatch {
  ruleId: string;
  cycleKey: string;
  moves: { move: AlertMove; workflowId: string }[];
}
