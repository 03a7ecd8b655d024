import type { AlertMetric } from './alert-rule.ts';
import type { AlertPlan } from './alert-planner.ts';

/**
 * What an alert cycle records, in Cloudpods' event vocabulary and formats (seed 000,
 * `monitor-migrationalert-event`): `migrating` with the guest and target note, `migrate_success`,
 * `migrate_fail`, `find_result_fail` with the reason per candidate target, plus `skipped` (another rule's batch
 * holds the migration lock), `no_data` / `data_back` (once per change, not every cycle).
 */

export interface AlertMove {
  guestId: string;
  guestName: string;
  fromHostId: string;
  fromHostName: string;
  toHostId: string;
  toHostName: string;
  vcpus: number;
  memoryMb: number;
  score: number;
  targetScore: number;
  targetCurrent: number;
}

export interface AlertCyclePlan {
  ruleId: string;
  ruleName: string;
  metric: AlertMetric;
  threshold: number;
  moves: AlertMove[];
}

export interface AlertEventRecord {
  type:
    | 'migrating'
    | 'migrate_success'
    | 'migrate_fail'
    | 'find_result_fail'
    | 'skipped'
    | 'no_data'
    | 'data_back';
  level: 'info' | 'warning' | 'error';
  message: string;
  data: Record<string, unknown>;
  dedupeKey: string;
}

interface Named {
  id: string;
  name: string;
}

interface RuleFacts {
  id: string;
  name: string;
  metric: AlertMetric;
  threshold: number;
  periodS: number;
  hostsWithoutData: string[];
}

/** The moves with names, the events of the plan, and the hosts now without data (kept on the rule). */
export function alertCycleEvents(input: {
  rule: RuleFacts;
  plan: AlertPlan;
  hosts: Map<string, Named>;
  guests: Map<string, Named & { hostId: string; vcpus: number; memoryMb: number }>;
  cycleKey: string;
}): { cyclePlan: AlertCyclePlan; events: AlertEventRecord[]; hostsWithoutData: string[] } {
  const { rule, plan, hosts, guests, cycleKey } = input;
  const hostName = (id: string) => hosts.get(id)?.name ?? id;
  const events: AlertEventRecord[] = [];

  const before = new Set(rule.hostsWithoutData);
  const now = new Set(plan.noData);
  for (const id of plan.noData) {
    if (before.has(id)) continue;
    events.push({
      type: 'no_data',
      level: 'warning',
      message: `host:${hostName(id)}: no ${rule.metric} data in the last ${rule.periodS}s: it cannot fire until data comes back`,
      data: { host: { id, name: hostName(id) } },
      dedupeKey: `${cycleKey}:no_data:${id}`,
    });
  }
  for (const id of rule.hostsWithoutData) {
    if (now.has(id)) continue;
    events.push({
      type: 'data_back',
      level: 'info',
      message: `host:${hostName(id)}: ${rule.metric} data again`,
      data: { host: { id, name: hostName(id) } },
      dedupeKey: `${cycleKey}:data_back:${id}`,
    });
  }

  const stuck = new Set(plan.alerted.filter((a) => !a.relieved).map((a) => a.host));
  const unplacedOn = new Map<string, number>();
  for (const { guest: id, reasons } of plan.unplaced) {
    const guest = guests.get(id);
    if (!guest || !stuck.has(guest.hostId)) continue;
    unplacedOn.set(guest.hostId, (unplacedOn.get(guest.hostId) ?? 0) + 1);
    events.push({
      type: 'find_result_fail',
      level: 'warning',
      message: `find result to migrate: not found target for guest ${guest.name}: [${reasons.join(', ')}]`,
      data: { guest: { id, name: guest.name, host_id: guest.hostId, host: hostName(guest.hostId) }, reasons },
      dedupeKey: `${cycleKey}:find_result_fail:${id}`,
    });
  }
  for (const alerted of plan.alerted) {
    if (alerted.relieved || unplacedOn.has(alerted.host)) continue;
    events.push({
      type: 'find_result_fail',
      level: 'warning',
      message: `find result to migrate: no guest on host ${hostName(alerted.host)} can move (${rule.metric} ${alerted.value.toFixed(6)}, threshold ${rule.threshold.toFixed(6)})`,
      data: {
        host: { id: alerted.host, name: hostName(alerted.host) },
        value: alerted.value,
        after: alerted.after,
      },
      dedupeKey: `${cycleKey}:find_result_fail:host:${alerted.host}`,
    });
  }

  const moves: AlertMove[] = plan.moves.map((m) => {
    const guest = guests.get(m.guest);
    return {
      guestId: m.guest,
      guestName: guest?.name ?? m.guest,
      fromHostId: m.from,
      fromHostName: hostName(m.from),
      toHostId: m.to,
      toHostName: hostName(m.to),
      vcpus: guest?.vcpus ?? 0,
      memoryMb: guest?.memoryMb ?? 0,
      score: m.score,
      targetScore: m.targetScore,
      targetCurrent: m.targetCurrent,
    };
  });
  return {
    cyclePlan: {
      ruleId: rule.id,
      ruleName: rule.name,
      metric: rule.metric,
      threshold: rule.threshold,
      moves,
    },
    events,
    hostsWithoutData: plan.noData,
  };
}

/** The seed's `migrating` note: the guest with its score, the target with its current value. */
export function migratingNote(move: AlertMove) {
  return {
    guest: {
      host: move.fromHostName,
      host_id: move.fromHostId,
      id: move.guestId,
      name: move.guestName,
      score: move.score,
      vcpu_count: move.vcpus,
      vmem_size: move.memoryMb,
    },
    target_host: { id: move.toHostId, name: move.toHostName, score: move.targetCurrent },
  };
}

export function migratingEvent(move: AlertMove, migrationId: string, cycleKey: string): AlertEventRecord {
  const note = migratingNote(move);
  return {
    type: 'migrating',
    level: 'info',
    message: JSON.stringify(note),
    data: { ...note, migration_id: migrationId },
    dedupeKey: `${cycleKey}:migrating:${move.guestId}`,
  };
}

export function migrationOutcomeEvent(
  move: AlertMove,
  outcome: { migrationId: string | null; ok: boolean; error: string | null; destination: string | null },
  cycleKey: string,
): AlertEventRecord {
  const type = outcome.ok ? 'migrate_success' : 'migrate_fail';
  const where = `${move.guestName} from ${move.fromHostName} to ${outcome.destination ?? move.toHostName}`;
  return {
    type,
    level: outcome.ok ? 'info' : 'error',
    message: outcome.ok
      ? `migrated ${where}`
      : `migrating ${where} failed: ${outcome.error ?? 'unknown error'}`,
    data: { ...migratingNote(move), migration_id: outcome.migrationId, error: outcome.error },
    dedupeKey: `${cycleKey}:${type}:${move.guestId}`,
  };
}

/** How recording a move's migration ended: its row, or why it was refused. */
export type RecordedMove = { migrationId: string } | { refused: string };

/** The events a batch records before its children start: `migrating` per recorded move, `migrate_fail` per refused. */
export function batchStartEvents(
  moves: readonly AlertMove[],
  recorded: readonly RecordedMove[],
  cycleKey: string,
): AlertEventRecord[] {
  return moves.map((move, i) => {
    const outcome = recorded[i]!;
    return 'refused' in outcome
      ? migrationOutcomeEvent(
          move,
          { migrationId: null, ok: false, error: outcome.refused, destination: null },
          cycleKey,
        )
      : migratingEvent(move, outcome.migrationId, cycleKey);
  });
}

export function skippedEvent(holder: string, cycleKey: string, moves: number): AlertEventRecord {
  return {
    type: 'skipped',
    level: 'warning',
    message: `another alert batch holds the migration lock (${holder}): this cycle's ${moves} move(s) skipped`,
    data: { holder, moves },
    dedupeKey: `${cycleKey}:skipped`,
  };
}
