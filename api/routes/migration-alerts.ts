import { createRoute } from '@hono/zod-openapi';
import type { z } from 'zod';
import { loadAlertSnapshot } from '../../activities/alert-snapshot.ts';
import {
  deleteMigrationAlert,
  findMigrationAlert,
  insertMigrationAlert,
  listMigrationAlerts,
  migrationAlertEvents,
  migrationAlertsByIds,
  updateMigrationAlert,
  type MigrationAlertPatch,
} from '../../db/alert-store.ts';
import type { Db } from '../../db/client.ts';
import { findGuest, findHost, guestsByIds, hostsByIds, isUuid, recordEvent } from '../../db/inventory.ts';
import { booleanFilter } from '../../domain/list-filters.ts';
import { nameKey, timeKey } from '../../domain/page-keys.ts';
import { DEFAULT_PAGE_LIMIT, pageOf as pageOfRows } from '../../domain/paging.ts';
import { listCursor } from '../list-cursors.ts';
import type { MigrationAlert } from '../../db/schema.ts';
import { planAlertMoves } from '../../domain/alert-planner.ts';
import {
  AlertRuleError,
  alertRuleSettings,
  createAlertRuleSchema,
  updateAlertRuleSchema,
} from '../../domain/alert-rule-request.ts';
import { alertPlanDocument } from '../../domain/alert-snapshot.ts';
import { deleteAlertSchedule, syncAlertSchedule, type AlertScheduleHome } from '../alert-schedules.ts';
import { alertEventView, alertRuleView } from '../alert-rule-views.ts';
import { callerOf } from '../caller.ts';
import type { ApiDeps } from '../deps.ts';
import { ApiError, jsonBody, notFound, parseOr400 } from '../errors.ts';
import {
  addRoute,
  AUTH_ERRORS,
  createdResponse,
  errorResponses,
  idParam,
  jsonBody as bodyOf,
  jsonResponse,
  routeGroup,
} from '../openapi.ts';
import { alertEventSchema, alertPlanSchema, alertRuleSchema, pageOf } from '../response-schemas.ts';
import { alertEventsQuerySchema, alertRuleListQuerySchema } from '../schemas.ts';

const tags = ['migration alerts'];
const ruleEventsQuerySchema = alertEventsQuerySchema.omit({ rule: true });
/** One cursor list for both routes: a rule's events are a part of every rule's, in the same order. */
const EVENTS_LIST = 'migration-alert-events';
const ruleId = idParam('rule id or name');

const listRules = createRoute({
  method: 'get',
  path: '/',
  tags,
  summary: "Cloudpods' migration-alert rules",
  request: { query: alertRuleListQuerySchema },
  responses: {
    200: jsonResponse(pageOf(alertRuleSchema), 'a page of the rules, by name'),
    ...errorResponses(400, ...AUTH_ERRORS),
  },
});

const createRule = createRoute({
  method: 'post',
  path: '/',
  tags,
  summary: 'Create a rule and its Temporal Schedule migration-alert-<name>',
  request: { body: bodyOf(createAlertRuleSchema) },
  responses: {
    201: createdResponse(alertRuleSchema, 'the rule'),
    ...errorResponses(400, 409, 503, ...AUTH_ERRORS),
  },
});

const getRule = createRoute({
  method: 'get',
  path: '/{id}',
  tags,
  summary: 'One rule',
  request: { params: ruleId },
  responses: { 200: jsonResponse(alertRuleSchema, 'the rule'), ...errorResponses(404, ...AUTH_ERRORS) },
});

const patchRule = createRoute({
  method: 'patch',
  path: '/{id}',
  tags,
  summary: 'Change a rule (and its schedule)',
  request: { params: ruleId, body: bodyOf(updateAlertRuleSchema) },
  responses: {
    200: jsonResponse(alertRuleSchema, 'the rule'),
    ...errorResponses(400, 404, 503, ...AUTH_ERRORS),
  },
});

const deleteRule = createRoute({
  method: 'delete',
  path: '/{id}',
  tags,
  summary: 'Delete a rule and its schedule',
  request: { params: ruleId },
  responses: {
    200: jsonResponse(alertRuleSchema, 'the deleted rule'),
    ...errorResponses(404, 503, ...AUTH_ERRORS),
  },
});

const ruleEvents = createRoute({
  method: 'get',
  path: '/{id}/events',
  tags,
  summary: "The rule's events, newest first",
  request: { params: ruleId, query: ruleEventsQuerySchema },
  responses: {
    200: jsonResponse(pageOf(alertEventSchema), 'a page of the events, newest first'),
    ...errorResponses(400, 404, ...AUTH_ERRORS),
  },
});

const planRule = createRoute({
  method: 'post',
  path: '/{id}/plan',
  tags,
  summary: "What the rule's cycle would move now, from the current metrics, without migrating",
  request: { params: ruleId },
  responses: { 200: jsonResponse(alertPlanSchema, 'the plan'), ...errorResponses(404, 503, ...AUTH_ERRORS) },
});

const allEvents = createRoute({
  method: 'get',
  path: '/',
  tags,
  summary: "Every rule's events, or one rule's, newest first",
  request: { query: alertEventsQuerySchema },
  responses: {
    200: jsonResponse(pageOf(alertEventSchema), 'a page of the events, newest first'),
    ...errorResponses(400, 404, ...AUTH_ERRORS),
  },
});

/** Host or guest names or ids to ids; an unknown one is a 400 naming it and the field. */
async function resolveIds(
  db: Db,
  field: 'source_hosts' | 'target_hosts' | 'source_guests',
  values: string[],
): Promise<string[]> {
  const ids: string[] = [];
  for (const value of values) {
    const found = field === 'source_guests' ? await findGuest(db, value) : await findHost(db, value);
    if (!found) {
      const kind = field === 'source_guests' ? 'server' : 'host';
      throw new ApiError(400, 'invalid_request', `${field}: no ${kind} with id or name '${value}'`, field);
    }
    if (!ids.includes(found.id)) ids.push(found.id);
  }
  return ids;
}

function settingsOr400<T>(fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if (err instanceof AlertRuleError) throw new ApiError(400, 'invalid_request', err.message, err.field);
    throw err;
  }
}

const scheduleUnavailable = (err: unknown) =>
  new ApiError(
    503,
    'unavailable',
    `could not update the rule's Temporal Schedule: ${(err as Error).message}`,
  );

/** /v1/migration-alerts: Cloudpods' migration-alert rules, each owning a Temporal Schedule. */
export function migrationAlertRoutes(deps: ApiDeps) {
  const { db } = deps;
  const home: AlertScheduleHome = {
    temporal: deps.temporal,
    taskQueue: deps.taskQueue,
    ...(deps.alertCycleTimings ? { cycleTimings: deps.alertCycleTimings } : {}),
  };
  /** The rules with the names of the hosts and guests they name: only those rows are read. */
  const views = async (rules: MigrationAlert[]) => {
    const hostIds = rules.flatMap((r) => [...r.sourceHostIds, ...r.targetHostIds, ...r.hostsWithoutData]);
    const [hosts, guests] = await Promise.all([
      hostsByIds(db, [...new Set(hostIds)]),
      guestsByIds(db, [...new Set(rules.flatMap((r) => r.sourceGuestIds))]),
    ]);
    const hostMap = new Map(hosts.map((h) => [h.id, h]));
    const guestMap = new Map(guests.map((g) => [g.id, g]));
    return rules.map((r) => alertRuleView(r, hostMap, guestMap));
  };
  const view = async (rule: MigrationAlert) => (await views([rule]))[0]!;
  const ruleOr404 = async (idOrName: string) => {
    const rule = await findMigrationAlert(db, idOrName);
    if (!rule) throw notFound('migration alert', idOrName);
    return rule;
  };

  const app = routeGroup();
  addRoute(app, listRules, async (c) => {
    const query = parseOr400(alertRuleListQuerySchema, c.req.query());
    const limit = query.limit ?? DEFAULT_PAGE_LIMIT;
    const rows = await listMigrationAlerts(db, {
      enabled: booleanFilter(query.enabled),
      metric: query.metric,
      after: listCursor('migration-alerts', query.cursor, (key) => nameKey(key, 'uuid')),
      limit: limit + 1,
    });
    const page = pageOfRows('migration-alerts', rows, limit, (r) => ({ sort: r.name, id: r.id }));
    return c.json({ items: await views(page.items), next_cursor: page.next_cursor });
  });
  addRoute(app, createRule, async (c) => {
    const body = parseOr400(createAlertRuleSchema, await jsonBody(c));
    const settings = settingsOr400(() => alertRuleSettings(body));
    const row = {
      name: body.name,
      ...settings,
      sourceHostIds: await resolveIds(db, 'source_hosts', body.source_hosts ?? []),
      targetHostIds: await resolveIds(db, 'target_hosts', body.target_hosts ?? []),
      sourceGuestIds: await resolveIds(db, 'source_guests', body.source_guests ?? []),
    };
    const created = await insertMigrationAlert(db, row);
    if (created === 'exists') {
      throw new ApiError(409, 'conflict', `a migration alert named '${body.name}' already exists`, 'name');
    }
    try {
      await syncAlertSchedule(home, created);
    } catch (err) {
      // No rule without its schedule: the rule goes again.
      await deleteMigrationAlert(db, created.id);
      throw scheduleUnavailable(err);
    }
    await recordEvent(db, {
      subjectKind: 'rule',
      subjectId: created.id,
      type: 'create',
      message: JSON.stringify({ id: created.id, name: created.name, res_name: 'migrationalert' }),
      data: { id: created.id, name: created.name, res_name: 'migrationalert' },
      requestedBy: callerOf(c).requester,
    });
    c.header('Location', `/v1/migration-alerts/${created.id}`);
    return c.json(await view(created), 201);
  });
  addRoute(app, getRule, async (c) => c.json(await view(await ruleOr404(c.req.param('id') ?? ''))));
  addRoute(app, patchRule, async (c) => {
    const rule = await ruleOr404(c.req.param('id') ?? '');
    const body = parseOr400(updateAlertRuleSchema, await jsonBody(c));
    const settings = settingsOr400(() => alertRuleSettings(body, rule));
    const patch: MigrationAlertPatch = { ...settings };
    if (body.source_hosts) patch.sourceHostIds = await resolveIds(db, 'source_hosts', body.source_hosts);
    if (body.target_hosts) patch.targetHostIds = await resolveIds(db, 'target_hosts', body.target_hosts);
    if (body.source_guests) patch.sourceGuestIds = await resolveIds(db, 'source_guests', body.source_guests);
    const updated = await updateMigrationAlert(db, rule.id, patch);
    if (!updated) throw notFound('migration alert', c.req.param('id') ?? '');
    try {
      await syncAlertSchedule(home, updated);
    } catch (err) {
      // The rule stays as its schedule still runs it.
      const { id: _id, name: _name, createdAt: _created, ...previous } = rule;
      await updateMigrationAlert(db, rule.id, previous);
      throw scheduleUnavailable(err);
    }
    await recordEvent(db, {
      subjectKind: 'rule',
      subjectId: rule.id,
      type: 'update',
      message: JSON.stringify(body),
      data: body,
      requestedBy: callerOf(c).requester,
    });
    return c.json(await view(updated));
  });
  addRoute(app, deleteRule, async (c) => {
    const rule = await ruleOr404(c.req.param('id') ?? '');
    const deleted = await view(rule);
    try {
      await deleteAlertSchedule(home, rule.name);
    } catch (err) {
      throw scheduleUnavailable(err);
    }
    await deleteMigrationAlert(db, rule.id);
    await recordEvent(db, {
      subjectKind: 'rule',
      subjectId: rule.id,
      type: 'delete',
      message: JSON.stringify({ id: rule.id, name: rule.name, res_name: 'migrationalert' }),
      requestedBy: callerOf(c).requester,
    });
    return c.json(deleted);
  });
  addRoute(app, ruleEvents, async (c) => {
    const query = parseOr400(ruleEventsQuerySchema, c.req.query());
    return c.json(await alertEvents(db, await ruleOr404(c.req.param('id') ?? ''), query));
  });
  addRoute(app, planRule, async (c) => {
    const rule = await ruleOr404(c.req.param('id') ?? '');
    if (!deps.metrics) throw new ApiError(503, 'unavailable', 'no InfluxDB metrics reader is configured');
    const snapshot = await loadAlertSnapshot(
      { db, metrics: deps.metrics, liveness: deps.liveness },
      rule,
      new Date(),
    );
    const plan = planAlertMoves(snapshot.input);
    const hostName = (id: string) => snapshot.hosts.get(id)?.name ?? id;
    const guestName = (id: string) => snapshot.guests.get(id)?.name ?? id;
    return c.json({
      rule: rule.name,
      now: snapshot.input.now,
      ...alertPlanDocument(plan),
      alerted: plan.alerted.map((a) => ({ ...a, hostName: hostName(a.host) })),
      noData: plan.noData.map((id) => ({ id, name: hostName(id) })),
      settling: plan.settling.map((id) => ({ id, name: hostName(id) })),
      names: {
        hosts: Object.fromEntries([...snapshot.hosts.values()].map((h) => [h.id, h.name])),
        guests: Object.fromEntries(plan.moves.map((m) => [m.guest, guestName(m.guest)])),
      },
    });
  });
  return app;
}

/** A page of one rule's events, or of every rule's (`rule` null), newest first, each with its rule's name. */
async function alertEvents(
  db: Db,
  rule: MigrationAlert | null,
  query: Omit<z.output<typeof alertEventsQuerySchema>, 'rule'>,
) {
  const limit = query.limit ?? DEFAULT_PAGE_LIMIT;
  const rows = await migrationAlertEvents(db, rule?.id ?? null, {
    type: query.type,
    level: query.level,
    since: query.since !== undefined ? new Date(query.since) : undefined,
    before: listCursor(EVENTS_LIST, query.cursor, (key) => timeKey(key, 'serial')),
    limit: limit + 1,
  });
  const page = pageOfRows(EVENTS_LIST, rows, limit, (e) => ({ sort: e.pageKey, id: String(e.id) }));
  // The rules of this page only; an event whose rule was deleted since keeps its id, with no name.
  const ruleIds = [...new Set(page.items.map((e) => e.subjectId))].filter(isUuid);
  const rules = rule ? [rule] : await migrationAlertsByIds(db, ruleIds);
  const names = new Map(rules.map((r) => [r.id, r.name]));
  return {
    items: page.items.map(({ pageKey: _key, ...e }) => alertEventView(e, names.get(e.subjectId) ?? null)),
    next_cursor: page.next_cursor,
  };
}

/** GET /v1/migration-alert-events[?rule=ID|NAME]: every rule's events, or one rule's, newest first. */
export function migrationAlertEventRoutes({ db }: ApiDeps) {
  const app = routeGroup();
  addRoute(app, allEvents, async (c) => {
    const { rule: ruleRef, ...query } = parseOr400(alertEventsQuerySchema, c.req.query());
    const rule = ruleRef === undefined ? null : await findMigrationAlert(db, ruleRef);
    if (rule === undefined) throw notFound('migration alert', ruleRef!);
    return c.json(await alertEvents(db, rule, query));
  });
  return app;
}
