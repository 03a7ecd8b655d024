import { Hono, type Context } from 'hono';
import { findGuest, findHost, listGuests, listHosts, recordEvent } from '../../db/inventory.ts';
import { WorkflowNotFoundError } from '@temporalio/client';
import {
  closeUnstartedMigration,
  findMigration,
  listMigrations,
  migrationEvents,
} from '../../db/migration-store.ts';
import type { Migration } from '../../db/schema.ts';
import { forceCompleteSignal } from '../../workflows/live-migrate-messages.ts';
import { isTerminalPhase } from '../../domain/migration-phases.ts';
import { visibleProjects } from '../../domain/project-scope.ts';
import type { Requester } from '../../domain/requester.ts';
import { callerOf, requireProjectScope } from '../caller.ts';
import type { ApiDeps } from '../deps.ts';
import { ApiError, notFound, parseOr400 } from '../errors.ts';
import { underGuestMigrationLock } from '../guest-migration-lock.ts';
import { migrationListQuerySchema } from '../schemas.ts';
import { neverStarted } from '../unstarted-migrations.ts';

/** After switch-over the guest already runs on the destination: there is nothing left to cancel. */
const PAST_SWITCH_OVER = new Set(['switching-over', 'verifying', 'committing', 'cleaning']);

const CANCELLED_BEFORE_START = 'cancelled by operator before its workflow started';

export function migrationView(m: Migration, hostNames: Map<string, string>, guestName?: string) {
  return {
    id: m.id,
    kind: m.kind,
    guest: { id: m.guestId, name: guestName ?? null },
    source: { id: m.sourceHostId, name: hostNames.get(m.sourceHostId) ?? null },
    destination: m.destinationHostId
      ? { id: m.destinationHostId, name: hostNames.get(m.destinationHostId) ?? null }
      : null,
    trigger: m.trigger,
    groupId: m.groupId,
    phase: m.phase,
    options: m.options,
    /** The cluster config and policy as resolved when the migration started, and the plan it ran. */
    resolvedPolicy: m.resolvedPolicy,
    progress: m.progress,
    timings: m.timings,
    checks: m.checks,
    error: m.error,
    workflowId: m.workflowId,
    /** Who asked: `{by, role, tokenId?}`; null on rows from before it was recorded. */
    requestedBy: m.requestedBy,
    requestedAt: m.requestedAt,
    finishedAt: m.finishedAt,
  };
}

/**
 * Reads come from the migration row alone: a run whose worker is down must not stall or break them. A token
 * limited to projects sees the migrations of their guests only, and may act on nothing else (403 naming the
 * guest's project).
 */
export function migrationRoutes(deps: ApiDeps) {
  const { db, temporal } = deps;
  const hostNames = async () => new Map((await listHosts(db)).map((h) => [h.id, h.name]));
  /** The migration (404 if unknown) and its guest, once the caller may see it (403 naming the project). */
  const migrationOf = async (c: Context) => {
    const id = c.req.param('id') ?? '';
    const row = /^[0-9a-f-]{36}$/i.test(id) ? await findMigration(db, id) : undefined;
    if (!row) throw notFound('migration', id);
    const guest = await findGuest(db, row.guestId);
    if (guest)
      requireProjectScope(callerOf(c), `migration ${row.id} of server '${guest.name}'`, guest.project);
    return { row, guest };
  };

  return new Hono()
    .get('/', async (c) => {
      const query = parseOr400(migrationListQuerySchema, c.req.query());
      const caller = callerOf(c);
      const guest = query.guest !== undefined ? await findGuest(db, query.guest) : undefined;
      if (query.guest !== undefined && !guest) throw notFound('server', query.guest);
      if (guest) requireProjectScope(caller, `server '${guest.name}'`, guest.project);
      const host = query.host !== undefined ? await findHost(db, query.host) : undefined;
      if (query.host !== undefined && !host) throw notFound('host', query.host);
      const rows = await listMigrations(db, {
        guestId: guest?.id,
        hostId: host?.id,
        status: query.status,
        projects: visibleProjects(caller),
        limit: query.limit,
      });
      const [names, guests] = await Promise.all([hostNames(), listGuests(db)]);
      const guestNames = new Map(guests.map((g) => [g.id, g.name]));
      return c.json({ migrations: rows.map((m) => migrationView(m, names, guestNames.get(m.guestId))) });
    })
    .get('/groups/:groupId', async (c) => {
      const groupId = c.req.param('groupId');
      const projects = visibleProjects(callerOf(c));
      // A scoped token sees its projects' members of the group; a group without any is not found.
      const rows = /^[0-9a-f-]{36}$/i.test(groupId) ? await listMigrations(db, { groupId, projects }) : [];
      if (rows.length === 0) throw notFound('migration group', groupId);
      const [names, guests] = await Promise.all([hostNames(), listGuests(db)]);
      const guestNames = new Map(guests.map((g) => [g.id, g.name]));
      const views = rows.map((m) => migrationView(m, names, guestNames.get(m.guestId)));
      return c.json({
        groupId,
        done: rows.every((m) => isTerminalPhase(m.phase)),
        migrations: views.map((m) => ({
          id: m.id,
          server: m.guest.name,
          trigger: m.trigger,
          phase: m.phase,
          source: m.source.name,
          destination: m.destination?.name ?? null,
          error: m.error,
        })),
      });
    })
    .get('/:id', async (c) => {
      const { row, guest } = await migrationOf(c);
      const [names, events] = await Promise.all([hostNames(), migrationEvents(db, row.id)]);
      return c.json({
        ...migrationView(row, names, guest?.name),
        events: events.map((e) => ({
          at: e.at,
          type: e.type,
          level: e.level,
          message: e.message,
          data: e.data,
          requestedBy: e.requestedBy,
        })),
      });
    })
    .post('/:id/force-complete', async (c) => {
      const { row } = await migrationOf(c);
      if (isTerminalPhase(row.phase)) {
        throw new ApiError(409, 'migration_finished', `migration ${row.id} is already ${row.phase}`);
      }
      if (row.phase !== 'copying') {
        throw new ApiError(
          409,
          'not_copying',
          `migration ${row.id} is ${row.phase}: force-complete acts only while memory is being copied`,
        );
      }
      const plan = (row.resolvedPolicy as { plan?: { start?: { postCopy?: boolean } } } | null)?.plan;
      const { requester } = callerOf(c);
      // Who asked, in the migration's timeline before what the run does about it.
      await recordEvent(db, {
        subjectKind: 'migration',
        subjectId: row.id,
        type: 'force_complete_requested',
        message: `force-complete requested by ${requester.by}`,
        requestedBy: requester,
      });
      await temporal.workflow.getHandle(row.workflowId).signal(forceCompleteSignal);
      return c.json(
        {
          migrationId: row.id,
          action: plan?.start?.postCopy ? 'start-post-copy' : 'pause-guest',
          message: plan?.start?.postCopy
            ? 'switching to post-copy: the guest runs on the destination at once and pulls the rest of its memory'
            : 'pausing the guest so the remaining memory is copied; it resumes on the destination',
        },
        202,
      );
    })
    .post('/:id/cancel', async (c) => {
      const { row } = await migrationOf(c);
      const { requester } = callerOf(c);
      if (row.phase === 'pending') {
        const cancelled = await cancelIfNeverStarted(deps, row, requester);
        if (cancelled) return c.json({ migrationId: row.id, status: 'cancelled' }, 200);
      }
      refuseCancel(row);
      // Who asked, in the migration's timeline before what the run does about it.
      await recordEvent(db, {
        subjectKind: 'migration',
        subjectId: row.id,
        type: 'cancel_requested',
        message: `cancel requested by ${requester.by}`,
        requestedBy: requester,
      });
      try {
        await temporal.workflow.getHandle(row.workflowId).cancel();
      } catch (err) {
        if (!(err instanceof WorkflowNotFoundError)) throw err;
        // The run closed between reading the row and cancelling it.
        const now = await findMigration(db, row.id);
        if (now && isTerminalPhase(now.phase)) refuseCancel(now);
        throw new ApiError(
          409,
          'workflow_not_running',
          `migration ${row.id} is ${now?.phase ?? row.phase} but its workflow ${row.workflowId} is not running; try again in a moment`,
        );
      }
      return c.json({ migrationId: row.id, status: 'cancelling' }, 202);
    });
}

/** 409 when the migration cannot be cancelled any more. */
function refuseCancel(row: Migration): void {
  if (isTerminalPhase(row.phase)) {
    throw new ApiError(409, 'migration_finished', `migration ${row.id} is already ${row.phase}`);
  }
  if (PAST_SWITCH_OVER.has(row.phase)) {
    throw new ApiError(
      409,
      'past_switch_over',
      `migration ${row.id} is ${row.phase}: the guest already runs on the destination, so it can no longer be cancelled`,
    );
  }
  if ((row.progress as { status?: string } | null)?.status === 'postcopy-active') {
    throw new ApiError(
      409,
      'postcopy_active',
      `migration ${row.id} is in post-copy: the guest's memory is split between both hosts, so it cannot be cancelled`,
    );
  }
}

/** A pending migration whose workflow never started has nothing to roll back: its record is closed here. */
async function cancelIfNeverStarted(
  { db, temporal }: ApiDeps,
  row: Migration,
  requester: Requester,
): Promise<boolean> {
  return underGuestMigrationLock(db, [{ id: row.guestId, name: row.guestId }], async (locked) => {
    const current = await findMigration(locked, row.id);
    if (!current || !(await neverStarted(temporal, current))) return false;
    await closeUnstartedMigration(locked, current.id, 'cancelled', CANCELLED_BEFORE_START, requester);
    return true;
  });
}
