import {
  ScheduleAlreadyRunning,
  ScheduleNotFoundError,
  ScheduleOverlapPolicy,
  type Client,
  type ScheduleDescription,
  type ScheduleOptions,
  type ScheduleOptionsStartWorkflowAction,
} from '@temporalio/client';
import type { MigrationAlert } from '../db/schema.ts';
import type { AlertCycleInput, AlertCycleTimings } from '../domain/alert-cycle.ts';
import { ALERT_SCHEDULE_PREFIX, alertCycleWorkflowId, alertScheduleId } from '../domain/workflow-ids.ts';
import { alertCycleSummary } from '../domain/workflow-summaries.ts';
import type { alertCycle } from '../workflows/alert-cycle.ts';
import { MigrationTriggerKey } from '../workflows/search-attributes.ts';

/** Where rules' schedules live and what their cycles are given. */
export interface AlertScheduleHome {
  temporal: Client;
  taskQueue: string;
  /** Absent: the cycle's defaults. Tests pass small ones. */
  cycleTimings?: AlertCycleTimings;
}

type Rule = Pick<MigrationAlert, 'id' | 'name' | 'metric' | 'threshold' | 'periodS' | 'enabled'>;

const note = (rule: Rule) =>
  `migration alert '${rule.name}': ${rule.metric} ${rule.metric === 'cpu.usage_active' ? '>' : '<'} ${rule.threshold}, every ${rule.periodS}s${rule.enabled ? '' : ' (rule disabled)'}`;

/** The schedule a rule owns: every period, a cycle; a cycle still running when the next is due makes it skip. */
export function desiredAlertSchedule(home: AlertScheduleHome, rule: Rule): ScheduleOptions {
  const input: AlertCycleInput = {
    ruleId: rule.id,
    ...(home.cycleTimings ? { timings: home.cycleTimings } : {}),
  };
  return {
    scheduleId: alertScheduleId(rule.name),
    spec: { intervals: [{ every: rule.periodS * 1000 }] },
    action: {
      type: 'startWorkflow',
      workflowType: 'alertCycle',
      args: [input],
      taskQueue: home.taskQueue,
      workflowId: alertCycleWorkflowId(rule.name),
      staticSummary: alertCycleSummary(
        rule.name,
        `${rule.metric}.${rule.metric === 'cpu.usage_active' ? 'gt' : 'lt'} ${rule.threshold}`,
      ),
      typedSearchAttributes: [{ key: MigrationTriggerKey, value: 'alert' }],
    },
    policies: { overlap: ScheduleOverlapPolicy.SKIP, catchupWindow: rule.periodS * 1000 },
    state: { paused: !rule.enabled, note: note(rule) },
    memo: { ruleId: rule.id, ruleName: rule.name },
  };
}

function matches(description: ScheduleDescription, desired: ScheduleOptions, rule: Rule): boolean {
  const interval = description.spec.intervals?.[0];
  const action = description.action;
  const [input] = (action.args ?? []) as AlertCycleInput[];
  const wanted = (desired.action.args as AlertCycleInput[])[0]!;
  return (
    description.spec.intervals?.length === 1 &&
    interval?.every === rule.periodS * 1000 &&
    description.state.paused === !rule.enabled &&
    action.taskQueue === desired.action.taskQueue &&
    JSON.stringify(input) === JSON.stringify(wanted) &&
    description.policies.overlap === ScheduleOverlapPolicy.SKIP
  );
}

/** Makes the rule's schedule what the rule says: created when missing, updated and paused/unpaused when not. */
export async function syncAlertSchedule(
  home: AlertScheduleHome,
  rule: Rule,
): Promise<'created' | 'updated' | 'unchanged'> {
  const desired = desiredAlertSchedule(home, rule);
  try {
    await home.temporal.schedule.create<typeof alertCycle>(desired as ScheduleOptions<never>);
    return 'created';
  } catch (err) {
    if (!(err instanceof ScheduleAlreadyRunning)) throw err;
  }
  const handle = home.temporal.schedule.getHandle(desired.scheduleId);
  const description = await handle.describe();
  if (matches(description, desired, rule)) return 'unchanged';
  await handle.update(() => ({
    spec: desired.spec,
    action: desired.action as ScheduleOptionsStartWorkflowAction<typeof alertCycle>,
    policies: desired.policies,
    state: { paused: !rule.enabled, note: note(rule) },
  }));
  if (rule.enabled) await handle.unpause(note(rule));
  else await handle.pause(note(rule));
  return 'updated';
}

export async function deleteAlertSchedule(home: AlertScheduleHome, ruleName: string): Promise<void> {
  try {
    await home.temporal.schedule.getHandle(alertScheduleId(ruleName)).delete();
  } catch (err) {
    if (!(err instanceof ScheduleNotFoundError)) throw err;
  }
}

export interface ScheduleRepair {
  created: string[];
  updated: string[];
  deleted: string[];
}

/**
 * Rules and schedules never drift apart for long: run at start-up, this gives every rule its schedule as the
 * rule says, and deletes every rule schedule whose rule is gone.
 */
export async function reconcileAlertSchedules(
  home: AlertScheduleHome,
  rules: Rule[],
): Promise<ScheduleRepair> {
  const repair: ScheduleRepair = { created: [], updated: [], deleted: [] };
  for (const rule of rules) {
    const outcome = await syncAlertSchedule(home, rule);
    if (outcome !== 'unchanged') repair[outcome].push(rule.name);
  }
  const owned = new Set(rules.map((r) => alertScheduleId(r.name)));
  for await (const schedule of home.temporal.schedule.list()) {
    if (!schedule.scheduleId.startsWith(ALERT_SCHEDULE_PREFIX) || owned.has(schedule.scheduleId)) continue;
    // Only schedules of alert cycles: anything else under the prefix is not ours to delete.
    if (schedule.action?.type !== 'startWorkflow' || schedule.action.workflowType !== 'alertCycle') continue;
    await deleteAlertSchedule(home, schedule.scheduleId.slice(ALERT_SCHEDULE_PREFIX.length));
    repair.deleted.push(schedule.scheduleId);
  }
  return repair;
}
