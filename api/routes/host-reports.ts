import { createRoute } from '@hono/zod-openapi';
import { z } from 'zod';
import { storeHostReport } from '../../db/guest-report-store.ts';
import { heartbeatRefreshS, hostReportSchema } from '../../domain/guest-reports.ts';
import { callerOf } from '../caller.ts';
import type { ApiDeps } from '../deps.ts';
import { ApiError, jsonBody, notFound, parseOr400 } from '../errors.ts';
import {
  addRoute,
  AUTH_ERRORS,
  errorResponses,
  idParam,
  jsonBody as bodyOf,
  jsonResponse,
  routeGroup,
} from '../openapi.ts';

const storedReportSchema = z.object({
  guestRowsWritten: z
    .number()
    .int()
    .describe('guests whose stored state changed (a heartbeat alone rarely does)'),
  guestRowsRemoved: z.number().int().describe('guests the host no longer holds'),
});

const putReport = createRoute({
  method: 'put',
  path: '/{id}/report',
  tags: ['hosts'],
  summary:
    "A host's agent reports the guests it holds (on every change, and every interval as its heartbeat)",
  description:
    'Reads of live state (GET /v1/servers…) come from the last report, never from the agents. A host may report ' +
    'only itself with its own credential.',
  request: { params: idParam('host id'), body: bodyOf(hostReportSchema) },
  responses: {
    200: jsonResponse(storedReportSchema, 'what the report changed'),
    ...errorResponses(400, 403, 404, ...AUTH_ERRORS),
  },
});

export function hostReportRoutes({ db }: ApiDeps) {
  const app = routeGroup();
  addRoute(app, putReport, async (c) => {
    const id = c.req.param('id') ?? '';
    const caller = callerOf(c);
    if (caller.host && caller.host.id !== id) {
      throw new ApiError(
        403,
        'forbidden',
        `id: this credential is host ${caller.host.name}'s (${caller.host.id}), not ${id}'s`,
        'id',
      );
    }
    const report = parseOr400(hostReportSchema, await jsonBody(c));
    const stored = z.uuid().safeParse(id).success
      ? await storeHostReport(db, id, report, {
          receivedAt: new Date(),
          heartbeatRefreshS: heartbeatRefreshS(report),
        })
      : null;
    if (!stored) throw notFound('host', id);
    return c.json(stored);
  });
  return app;
}
