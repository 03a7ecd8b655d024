import { createRoute } from '@hono/zod-openapi';
import { loadAlertSnapshot } from '../../activities/alert-snapshot.ts';
import {
  deleteMigrationAlert,
  findMigrationAlert,
  insertMigrationAlert,
  listMigrationAlerts,
  migrationAlertEvents,
  updateMigrationAlert,
  type MigrationAlertPatch,
} from '../../db/alert-store.ts';
import type { Db } from '../../db/client.ts';
import { findGuest, findHost, listGuests, listHosts, recordEvent } from '../../db/inventory.ts';
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
import { alertEventSchema, alertPlanSchema, alertRuleSchema, listOf } from '../response-schemas.ts';
import { alertEventsQuerySchema } from '../schemas.ts';

const tags = ['migration alerts'];
const ruleId = idParam('rule id or name');

const listRules = createRoute({
  method: 'get',
  path: '/',
  tags,
  summary: "Cloudpods' migration-alert rules",
  responses: { 200: jsonResponse(listOf(alertRuleSchema), 'the rules'), ...errorResponses(...AUTH_ERRORS) },
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
  request: { params: ruleId, query: alertEventsQuerySchema.omit({ rule: true }) },
  responses: {
    200: jsonResponse(listOf(alertEventSchema), 'the events'),
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
    200: jsonResponse(listOf(alertEventSchema), 'the events'),
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
  const view = async (rule: MigrationAlert) => {
    const [hosts, guests] = await Promise.all([listHosts(db), listGuests(db)]);
    return alertRuleView(rule, new Map(hosts.map((h) => [h.id, h])), new Map(guests.map((g) => [g.id, g])));
  };
  const ruleOr404 = async (idOrName: string) => {
    const rule = await findMigrationAlert(db, idOrName);
    if (!rule) throw notFound('migration alert', idOrName);
    return rule;
  };

  const app = routeGroup();
  addRoute(app, listRules, async (c) => {
    const [rules, hosts, guests] = await Promise.all([
      listMigrationAlerts(db),
      listHosts(db),
      listGuests(db),
    ]);
    const hostMap = new Map(hosts.map((h) => [h.id, h]));
    const guestMap = new Map(guests.map((g) => [g.id, g]));
    return c.json({ items: rules.map((r) => alertRuleView(r, hostMap, guestMap)) });
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
    const { limit } = parseOr400(alertEventsQuerySchema, c.req.query());
    return c.json(await alertEvents(db, await ruleOr404(c.req.param('id') ?? ''), limit));
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

/** One rule's events, or every rule's (`rule` null), newest first, each with its rule's name. */
async function alertEvents(db: Db, rule: MigrationAlert | null, limit: number) {
  const [events, rules] = await Promise.all([
    migrationAlertEvents(db, rule?.id ?? null, limit),
    rule ? [rule] : listMigrationAlerts(db),
  ]);
  const names = new Map(rules.map((r) => [r.id, r.name]));
  return { items: events.map((e) => alertEventView(e, names.get(e.subjectId) ?? null)) };
}

/** GET /v1/migration-alert-events[?rule=ID|NAME]: every rule's events, or one rule's, newest first. */
export function migrationAlertEventRoutes({ db }: ApiDeps) {
  const app = routeGroup();
  addRoute(app, allEvents, async (c) => {
    const { rule: ruleRef, limit } = parseOr400(alertEventsQuerySchema, c.req.query());
    const rule = ruleRef === undefined ? null : await findMigrationAlert(db, ruleRef);
    if (rule === undefined) throw notFound('migration alert', ruleRef!);
    return c.json(await alertEvents(db, rule, limit));
  });
  return app;
}
