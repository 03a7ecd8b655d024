import { createRoute, OpenAPIHono } from '@hono/zod-openapi';
import { sql } from 'drizzle-orm';
import { apiAuth } from './auth.ts';
import type { ApiDeps } from './deps.ts';
import { ApiError, handleError } from './errors.ts';
import {
  addRoute,
  defaultHook,
  documentInfo,
  errorResponses,
  jsonResponse,
  OPENAPI_PATH,
} from './openapi.ts';
import { healthSchema } from './response-schemas.ts';
import { coldMigrateRoutes } from './routes/cold-migrate.ts';
import { enrolmentTokenRoutes, enrolRoute } from './routes/enrolment.ts';
import { hostMaintenanceRoutes } from './routes/host-maintenance.ts';
import { hostRemovalRoutes } from './routes/host-removal.ts';
import { hostReportRoutes } from './routes/host-reports.ts';
import { hostRoutes } from './routes/hosts.ts';
import { liveMigrateRoutes } from './routes/live-migrate.ts';
import { migrationAlertEventRoutes, migrationAlertRoutes } from './routes/migration-alerts.ts';
import { migrationRoutes } from './routes/migrations.ts';
import {
  migrationConfigRoutes,
  migrationPolicyRoutes,
  serverMigrationPolicyRoutes,
} from './routes/migration-settings.ts';
import { REFERENCE_PATH, referencePageRoutes } from './routes/reference-page.ts';
import { serverPowerRoutes } from './routes/server-power.ts';
import { serverRoutes } from './routes/servers.ts';
import { tokenRoutes } from './routes/tokens.ts';

const healthz = createRoute({
  method: 'get',
  path: '/healthz',
  tags: ['meta'],
  summary: 'Liveness of the API and its database (no token)',
  security: [],
  responses: { 200: jsonResponse(healthSchema, 'up'), ...errorResponses(503) },
});

const openApiDocument = createRoute({
  method: 'get',
  path: OPENAPI_PATH,
  tags: ['meta'],
  summary: 'This document, OpenAPI 3.1 (no token)',
  security: [],
  responses: { 200: { description: 'the OpenAPI document' } },
});

export function createApp(deps: ApiDeps) {
  const app = new OpenAPIHono({ defaultHook });
  app.onError(handleError);
  app.notFound((c) =>
    c.json({ error: { code: 'not_found', message: `no route ${c.req.method} ${c.req.path}` } }, 404),
  );
  app.openAPIRegistry.registerComponent('securitySchemes', 'bearer', {
    type: 'http',
    scheme: 'bearer',
    description: 'the bootstrap admin token (API_TOKEN), an API token (vmt_…) or a host credential (vmh_…)',
  });

  addRoute(app, healthz, async (c) => {
    try {
      await deps.db.execute(sql`select 1`);
    } catch (err) {
      throw new ApiError(503, 'unavailable', `database: ${(err as Error).message}`);
    }
    return c.json({ status: 'ok' });
  });
  app.openAPIRegistry.registerPath(openApiDocument);
  app.doc31(OPENAPI_PATH, documentInfo);
  app.route(REFERENCE_PATH, referencePageRoutes());

  // Who calls and whether their role may call the route (domain/api-roles.ts), for every /v1 route.
  app.use('/v1/*', apiAuth(deps));
  app.route('/v1/hosts', enrolRoute(deps));
  app.route('/v1/hosts', hostRoutes(deps));
  app.route('/v1/hosts', hostMaintenanceRoutes(deps));
  app.route('/v1/hosts', hostRemovalRoutes(deps));
  app.route('/v1/hosts', hostReportRoutes(deps));
  app.route('/v1/servers', serverRoutes(deps));
  app.route('/v1/servers', liveMigrateRoutes(deps));
  app.route('/v1/servers', coldMigrateRoutes(deps));
  app.route('/v1/servers', serverPowerRoutes(deps));
  app.route('/v1/servers', serverMigrationPolicyRoutes(deps));
  app.route('/v1/migrations', migrationRoutes(deps));
  app.route('/v1/migration-config', migrationConfigRoutes(deps));
  app.route('/v1/migration-policies', migrationPolicyRoutes(deps));
  app.route('/v1/migration-alerts', migrationAlertRoutes(deps));
  app.route('/v1/migration-alert-events', migrationAlertEventRoutes(deps));
  app.route('/v1/tokens', tokenRoutes(deps));
  app.route('/v1/enrolment-tokens', enrolmentTokenRoutes(deps));
  return app;
}
