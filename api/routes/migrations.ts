import { Hono } from 'hono';
import { findGuest, findHost, listGuests, listHosts } from '../../db/inventory.ts';
import { findMigration, listMigrations, migrationEvents, terminalPhases } from '../../db/migration-store.ts';
import type { Migration } from '../../db/schema.ts';
import { forceCompleteSignal } from '../../workflows/live-migrate-messages.ts';
import type { ApiDeps } from '../deps.ts';
import { ApiError, notFound, parseOr400 } from '../errors.ts';
import { migrationListQuerySchema } from '../schemas.ts';

/** After switch-over the guest already runs on the destination: there is nothing left to cancel. */
const PAST_SWITCH_OVER = new Set(['switching-over', 'verifying', 'committing', 'cleaning']);

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
    requestedAt: m.requestedAt,
    finishedAt: m.finishedAt,
  };
}

/** Reads come from the migration row alone: a run whose worker is down must not stall or break them. */
export function migrationRoutes({ db, temporal }: ApiDeps) {
  const hostNames = async () => new Map((await listHosts(db)).map((h) => [h.id, h.name]));

  return new Hono()
    .get('/', async (c) => {
      const query = parseOr400(migrationListQuerySchema, c.req.query());
      const guest = query.guest !== undefined ? await findGuest(db, query.guest) : undefined;
      if (query.guest !== undefined && !guest) throw notFound('server', query.guest);
      const host = query.host !== undefined ? await findHost(db, query.host) : undefined;
      if (query.host !== undefined && !host) throw notFound('host', query.host);
      const rows = await listMigrations(db, {
        guestId: guest?.id,
        hostId: host?.id,
        status: query.status,
        limit: query.limit,
      });
      const [names, guests] = await Promise.all([hostNames(), listGuests(db)]);
      const guestNames = new Map(guests.map((g) => [g.id, g.name]));
      return c.json({ migrations: rows.map((m) => migrationView(m, names, guestNames.get(m.guestId))) });
    })
    .get('/groups/:groupId', async (c) => {
      const groupId = c.req.param('groupId');
      const rows = /^[0-9a-f-]{36}$/i.test(groupId) ? await listMigrations(db, { groupId }) : [];
      if (rows.length === 0) throw notFound('migration group', groupId);
      const [names, guests] = await Promise.all([hostNames(), listGuests(db)]);
      const guestNames = new Map(guests.map((g) => [g.id, g.name]));
      const views = rows.map((m) => migrationView(m, names, guestNames.get(m.guestId)));
      return c.json({
        groupId,
        done: rows.every((m) => terminalPhases.includes(m.phase)),
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
      const id = c.req.param('id');
      const row = /^[0-9a-f-]{36}$/i.test(id) ? await findMigration(db, id) : undefined;
      if (!row) throw notFound('migration', id);
      const [names, guest, events] = await Promise.all([
        hostNames(),
        findGuest(db, row.guestId),
        migrationEvents(db, row.id),
      ]);
      return c.json({
        ...migrationView(row, names, guest?.name),
        events: events.map((e) => ({
          at: e.at,
          type: e.type,
          level: e.level,
          message: e.message,
          data: e.data,
        })),
      });
    })
    .post('/:id/force-complete', async (c) => {
      const id = c.req.param('id');
      const row = /^[0-9a-f-]{36}$/i.test(id) ? await findMigration(db, id) : undefined;
      if (!row) throw notFound('migration', id);
      if (terminalPhases.includes(row.phase)) {
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
      const id = c.req.param('id');
      const row = /^[0-9a-f-]{36}$/i.test(id) ? await findMigration(db, id) : undefined;
      if (!row) throw notFound('migration', id);
      if (terminalPhases.includes(row.phase)) {
        throw new ApiError(409, 'migration_finished', `migration ${row.id} is already ${row.phase}`);
      }
      const phase = row.phase;
      if (PAST_SWITCH_OVER.has(phase)) {
        throw new ApiError(
          409,
          'past_switch_over',
          `migration ${row.id} is ${phase}: the guest already runs on the destination, so it can no longer be cancelled`,
        );
      }
      if ((row.progress as { status?: string } | null)?.status === 'postcopy-active') {
        throw new ApiError(
          409,
          'postcopy_active',
          `migration ${row.id} is in post-copy: the guest's memory is split between both hosts, so it cannot be cancelled`,
        );
      }
      await temporal.workflow.getHandle(row.workflowId).cancel();
      return c.json({ migrationId: row.id, status: 'cancelling' }, 202);
    });
}
