import type { Event, Host, MigrationAlert } from '../db/schema.ts';
import { comparatorOf } from '../domain/alert-rule.ts';
import { alertScheduleId } from '../domain/workflow-ids.ts';

type Named = { id: string; name: string };

const named = (ids: string[], byId: Map<string, Named>) =>
  ids.map((id) => ({ id, name: byId.get(id)?.name ?? null }));

export function alertRuleView(rule: MigrationAlert, hosts: Map<string, Host>, guests: Map<string, Named>) {
  return {
    id: rule.id,
    name: rule.name,
    metric: rule.metric,
    comparator: comparatorOf(rule.metric),
    threshold: rule.threshold,
    periodS: rule.periodS,
    sourceHosts: named(rule.sourceHostIds, hosts),
    targetHosts: named(rule.targetHostIds, hosts),
    sourceGuests: named(rule.sourceGuestIds, guests),
    margin: rule.margin,
    cooldownS: rule.cooldownS,
    enabled: rule.enabled,
    hostsWithoutData: named(rule.hostsWithoutData, hosts),
    scheduleId: alertScheduleId(rule.name),
    createdAt: rule.createdAt,
    updatedAt: rule.updatedAt,
  };
}

/** Cloudpods' event columns: id, ops_time, obj_id, obj_name, action, notes. */
export function alertEventView(event: Event, ruleName: string | null) {
  return {
    id: event.id,
    at: event.at,
    ruleId: event.subjectId,
    ruleName,
    action: event.type,
    level: event.level,
    notes: event.message,
    data: event.data,
    /** Who caused it (the API caller); null for what a workflow decided on its own. */
    requestedBy: event.requestedBy,
  };
}
