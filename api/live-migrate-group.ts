import { randomUUID } from 'node:crypto';
import { listGuests, listHosts } from '../db/inventory.ts';
import { deleteMigration } from '../db/migration-store.ts';
import type { Guest } from '../db/schema.ts';
import { AFFINITY_LABEL_PREFIX, affinityGroupOf, affinityLabels } from '../domain/affinity.ts';
import type { LiveMigrateOptions, LiveMigrationTimings } from '../domain/live-migration.ts';
import { guestRunWorkflowId, liveMigrationGroupWorkflowId } from '../domain/workflow-ids.ts';
import { groupSummary } from '../domain/workflow-summaries.ts';
import type { GroupMember, liveMigrateGroup } from '../workflows/live-migrate-group.ts';
import {
  GuestIdKey,
  GuestNameKey,
  MigrationKindKey,
  MigrationTriggerKey,
} from '../workflows/search-attributes.ts';
import { requireProjectScope, ruleCaller, type ApiCaller } from './caller.ts';
import type { ApiDeps } from './deps.ts';
import { alreadyRunning } from './already-running.ts';
import { ApiError } from './errors.ts';
import { underGuestMigrationLock } from './guest-migration-lock.ts';
import { recordPendingMigration } from './pending-migration.ts';
import { awaitNoRunningWorkflow } from './workflow-runs.ts';

/** with_same_labels: one parent workflow moves the guest and every guest carrying its affinity labels. */
export async function startLiveMigrationGroup(
  deps: ApiDeps,
  caller: ApiCaller,
  guest: Guest,
  options: LiveMigrateOptions,
  timings: LiveMigrationTimings,
) {
  const { db, temporal, taskQueue } = deps;
  if (Object.keys(affinityLabels(guest.labels)).length === 0) {
    throw new ApiError(
      400,
      'invalid_request',
      `with_same_labels: server '${guest.name}' carries no affinity labels (labels whose key starts with '${AFFINITY_LABEL_PREFIX}')`,
      'with_same_labels',
    );
  }
  const [allGuests, hosts] = await Promise.all([listGuests(db), listHosts(db)]);
  const hostName = new Map(hosts.map((h) => [h.id, h.name]));
  const groupId = randomUUID();
  const group = [guest, ...affinityGroupOf(guest, allGuests)];
  // Every guest the request would move must be the caller's to act on, before anything is recorded.
  for (const g of group) requireProjectScope(caller, `server '${g.name}' (same affinity labels)`, g.project);
  return underGuestMigrationLock(db, group, async (locked) => {
    const members: GroupMember[] = [];
    try {
      for (const g of group) {
        const trigger = g.id === guest.id ? 'manual' : 'affinity';
        const childId = guestRunWorkflowId('live-migrate', g);
        const row = await recordPendingMigration(locked, temporal, g, {
          kind: 'live',
          sourceHostId: g.hostId,
          trigger,
          options: { ...options, withSameLabels: true },
          workflowId: childId,
          groupId,
          requestedBy: caller.requester,
        });
        members.push({
          input: { migrationId: row.id, guestId: g.id, options, caller: ruleCaller(caller), timings },
          guestName: g.name,
          sourceHost: hostName.get(g.hostId) ?? g.hostId,
          trigger,
          workflowId: childId,
          ...(options.preferHost ? { preferHost: options.preferHost } : {}),
        });
        // The guest's last migration may have ended a moment before its run closed: its child would clash.
        if (!(await awaitNoRunningWorkflow(temporal, childId))) {
          throw alreadyRunning(g.name, undefined);
        }
      }
    } catch (err) {
      // Nothing has run yet: the rows go, so nothing is left half-requested.
      for (const m of members) await deleteMigration(locked, m.input.migrationId);
      throw err;
    }
    const workflowId = liveMigrationGroupWorkflowId(groupId);
    try {
      await temporal.workflow.start<typeof liveMigrateGroup>('liveMigrateGroup', {
        taskQueue,
        workflowId,
        args: [{ groupId, members }],
        staticSummary: groupSummary({
          guests: members.map((m) => m.guestName),
          labels: affinityLabels(guest.labels),
          trigger: 'manual',
        }),
        typedSearchAttributes: [
          { key: GuestIdKey, value: guest.id },
          { key: GuestNameKey, value: guest.name },
          { key: MigrationKindKey, value: 'live-group' },
          { key: MigrationTriggerKey, value: 'manual' },
        ],
      });
    } catch (err) {
      // The run may or may not have started: the rows stay pending, and a later request for one of the guests
      // fails them if the group's workflow is not running.
      throw new ApiError(
        503,
        'unavailable',
        `could not start the group workflow: ${(err as Error).message}`,
        undefined,
        {
          groupId,
        },
      );
    }
    return {
      groupId,
      workflowId,
      migrations: members.map((m) => ({
        server: m.guestName,
        migrationId: m.input.migrationId,
        trigger: m.trigger,
      })),
    };
  });
}
