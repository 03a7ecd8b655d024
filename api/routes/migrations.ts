import { createRoute } from '@hono/zod-openapi';
import type { Context } from 'hono';
import { z } from 'zod';
import { findGuest, findHost, guestsByIds, recordEvent } from '../../db/inventory.ts';
import { DEFAULT_PAGE_LIMIT, pageOf as pageOfRows } from '../../domain/paging.ts';
import { WorkflowNotFoundError } from '@temporalio/client';
import { closeUnstartedMigration, findMigration, listMigrations } from '../../db/migration-store.ts';
import type { Migration } from '../../db/schema.ts';
import { forceCompleteSignal } from '../../workflows/live-migrate-messages.ts';
import { isTerminalPhase } from '../../domain/migration-phases.ts';
import { visibleProjects } from '../../domain/project-scope.ts';
import type { Requester } from '../../domain/requester.ts';
import { callerOf, requireProjectScope } from '../caller.ts';
import type { ApiDeps } from '../deps.ts';
import { ApiError, notFound, parseOr400 } from '../errors.ts';
import { underGuestMigrationLock } from '../guest-migration-lock.ts';
import {
  hostNamesOf,
  migrationDetail,
  migrationGroupView,
  migrationPath,
  migrationView,
} from '../migration-views.ts';
import {
  addRoute,
  AUTH_ERRORS,
  createdResponse,
  errorResponses,
  idParam,
  jsonResponse,
  routeGroup,
} from '../openapi.ts';
import { cursorKey } from '../paging.ts';
import { migrationDetailSchema, migrationGroupSchema, migrationSchema, pageOf } from '../response-schemas.ts';
import { migrationListQuerySchema } from '../schemas.ts';
import { neverStarted } from '../unstarted-migrations.ts';

/** After switch-over the guest already runs on the destination: there is nothing left to cancel. */
const PAST_SWITCH_OVER = new Set(['switching-over', 'verifying', 'committing', 'cleaning']);

const CANCELLED_BEFORE_START = 'cancelled by operator before its workflow started';

const tags = ['migrations'];

/** A migrations cursor names the last one served: the next page holds the older ones. */
const olderThan = (key: { sort: string | number; id: string } | null) =>
  key && { requestedAt: String(key.sort), id: key.id };
const migrationId = idParam('migration id');

const listMigrationsRoute = createRoute({
  method: 'get',
  path: '/',
  tags,
  summary: 'Migrations, newest first',
  request: { query: migrationListQuerySchema },
  responses: {
    200: jsonResponse(pageOf(migrationSchema), 'a page of the migrations, newest first'),
    ...errorResponses(400, 404, ...AUTH_ERRORS),
  },
});

const getGroup = createRoute({
  method: 'get',
  path: '/groups/{groupId}',
  tags,
  summary: "Each guest's outcome of a with_same_labels request",
  request: { params: z.object({ groupId: z.string() }) },
  responses: {
    200: jsonResponse(migrationGroupSchema, 'the group'),
    ...errorResponses(404, ...AUTH_ERRORS),
  },
});

const getMigration = createRoute({
  method: 'get',
  path: '/{id}',
  tags,
  summary: 'Phase, progress, ETA, events, error',
  request: { params: migrationId },
  responses: {
    200: jsonResponse(migrationDetailSchema, 'the migration'),
    ...errorResponses(404, ...AUTH_ERRORS),
  },
});

const forceComplete = createRoute({
  method: 'post',
  path: '/{id}/force-complete',
  tags,
  summary: 'Finish now: post-copy when the policy allows it, else pause the guest for the final copy',
  description: 'The `force_complete_requested` event says which (`data.action`, `data.effect`).',
  request: { params: migrationId },
  responses: {
    202: createdResponse(migrationDetailSchema, 'the migration, with the request in its events'),
    ...errorResponses(404, 409, ...AUTH_ERRORS),
  },
});

const cancel = createRoute({
  method: 'post',
  path: '/{id}/cancel',
  tags,
  summary: 'Roll back; the guest keeps running on its source',
  request: { params: migrationId },
  responses: {
    200: createdResponse(
      migrationDetailSchema,
      'the migration, cancelled at once (its workflow never started)',
    ),
    202: createdResponse(migrationDetailSchema, 'the migration, being cancelled'),
    ...errorResponses(404, 409, ...AUTH_ERRORS),
  },
});

/**
 * Reads come from the migration row alone: a run whose worker is down must not stall or break them. A token
 * limited to projects sees the migrations of their guests only, and may act on nothing else (403 naming the
 * guest's project).
 */
export function migrationRoutes(deps: ApiDeps) {
  const { db, temporal } = deps;
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
  /** The migration as it is now, after an action on it. */
  const answer = async (c: Context, id: string, status: 200 | 202) => {
    const row = await findMigration(db, id);
    if (!row) throw notFound('migration', id);
    c.header('Location', migrationPath(id));
    return c.json(await migrationDetail(db, row), status);
  };
  const app = routeGroup();

  addRoute(app, listMigrationsRoute, async (c) => {
    const query = parseOr400(migrationListQuerySchema, c.req.query());
    const caller = callerOf(c);
    const guest = query.guest !== undefined ? await findGuest(db, query.guest) : undefined;
    if (query.guest !== undefined && !guest) throw notFound('server', query.guest);
    if (guest) requireProjectScope(caller, `server '${guest.name}'`, guest.project);
    const host = query.host !== undefined ? await findHost(db, query.host) : undefined;
    if (query.host !== undefined && !host) throw notFound('host', query.host);
    const limit = query.limit ?? DEFAULT_PAGE_LIMIT;
    const rows = await listMigrations(db, {
      guestId: guest?.id,
      hostId: host?.id,
      status: query.status,
      projects: visibleProjects(caller),
      limit: limit + 1,
      before: olderThan(cursorKey('migrations', query.cursor)),
    });
    const page = pageOfRows('migrations', rows, limit, (m) => ({ sort: m.pageKey, id: m.id }));
    const [names, guests] = await Promise.all([
      hostNamesOf(db, page.items),
      guestsByIds(db, [...new Set(page.items.map((m) => m.guestId))]),
    ]);
    const guestNames = new Map(guests.map((g) => [g.id, g.name]));
    return c.json({
      items: page.items.map(({ pageKey: _key, ...m }) => migrationView(m, names, guestNames.get(m.guestId))),
      next_cursor: page.next_cursor,
    });
  });

  addRoute(app, getGroup, async (c) => {
    const groupId = c.req.param('groupId') ?? '';
    const projects = visibleProjects(callerOf(c));
    // A scoped token sees its projects' members of the group; a group without any is not found.
    const rows = /^[0-9a-f-]{36}$/i.test(groupId) ? await listMigrations(db, { groupId, projects }) : [];
    if (rows.length === 0) throw notFound('migration group', groupId);
    return c.json(await migrationGroupView(db, groupId, rows));
  });

  addRoute(app, getMigration, async (c) => {
    const { row, guest } = await migrationOf(c);
    return c.json(await migrationDetail(db, row, guest?.name));
  });

  addRoute(app, forceComplete, async (c) => {
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
    const postCopy = plan?.start?.postCopy === true;
    const { requester } = callerOf(c);
    // Who asked and what it does, in the migration's timeline before what the run does about it.
    await recordEvent(db, {
      subjectKind: 'migration',
      subjectId: row.id,
      type: 'force_complete_requested',
      message: `force-complete requested by ${requester.by}`,
      data: {
        action: postCopy ? 'start-post-copy' : 'pause-guest',
        effect: postCopy
          ? 'switching to post-copy: the guest runs on the destination at once and pulls the rest of its memory'
          : 'pausing the guest so the remaining memory is copied; it resumes on the destination',
      },
      requestedBy: requester,
    });
    await temporal.workflow.getHandle(row.workflowId).signal(forceCompleteSignal);
    return answer(c, row.id, 202);
  });

  addRoute(app, cancel, async (c) => {
    const { row } = await migrationOf(c);
    const { requester } = callerOf(c);
    if (row.phase === 'pending') {
      const cancelled = await cancelIfNeverStarted(deps, row, requester);
      if (cancelled) return answer(c, row.id, 200);
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
    return answer(c, row.id, 202);
  });

  return app;
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
