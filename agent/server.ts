import { Hono } from 'hono';
import { z } from 'zod';
import {
  cleanupRequestSchema,
  diskExportRequestSchema,
  diskImportRequestSchema,
  guestSpecSchema,
  migrationParametersSchema,
  prepareIncomingRequestSchema,
  resumeRequestSchema,
  startMigrationRequestSchema,
} from '../domain/agent-contract.ts';
import type { HypervisorDriver } from './driver.ts';
import { AgentFailure, guestNotFound } from './errors.ts';
import { bearerToken, failureResponse, readBody, tokenMatches } from './http.ts';
import { KeyedMutex } from './keyed-mutex.ts';
import { NetworkProbes, networkProbeRoutes } from './network-probe.ts';
import { errorMessage, type Logger } from './log.ts';
import { QmpClosedError, QmpError, QmpTimeoutError } from './qmp.ts';

const fencingRequestSchema = z.strictObject({ armed: z.boolean() });

export interface AgentAppDeps {
  driver: HypervisorDriver;
  /** Callers must send `Authorization: Bearer <token>`. */
  token: string;
  log: Logger;
  /** Agent-to-agent routes mounted at /v1/internal; they authenticate on their own (see sim-peer.ts). */
  internal?: Hono;
  /** While false (the driver still reattaches to its guests) every call gets a 503. */
  isReady?: () => boolean;
  /** Migration-network reachability probes; their listeners close on their own. */
  probes?: NetworkProbes;
  /** Whether the host fences its guests on lease loss (agent/fencing-arm.ts). */
  fencing?: { isArmed(): boolean; set(armed: boolean): Promise<void>; enabled: boolean };
}

/** The host-agent HTTP API of domain/agent-contract.ts. */
export function createAgentApp(deps: AgentAppDeps): Hono {
  const { driver, log } = deps;
  const app = new Hono();
  const perGuest = new KeyedMutex();
  const probes = deps.probes ?? new NetworkProbes();
  const serialised = <T>(id: string, work: () => Promise<T>): Promise<T> => perGuest.run(id, work);

  app.onError((error, c) => {
    if (error instanceof AgentFailure) return failureResponse(c, error);
    if (error instanceof QmpError)
      return failureResponse(c, new AgentFailure(502, 'qmp_error', error.message));
    if (error instanceof QmpClosedError || error instanceof QmpTimeoutError) {
      return failureResponse(c, new AgentFailure(503, 'hypervisor_unreachable', error.message));
    }
    log(`internal error on ${c.req.method} ${c.req.path}: ${errorMessage(error)}`);
    return failureResponse(c, new AgentFailure(500, 'internal', errorMessage(error)));
  });
  app.notFound((c) =>
    failureResponse(c, new AgentFailure(404, 'route_not_found', `no route ${c.req.method} ${c.req.path}`)),
  );

  app.get('/healthz', (c) => c.json({ ok: true, ready: deps.isReady?.() ?? true }));
  app.use('/v1/*', async (c, next) => {
    if (deps.isReady?.() === false) {
      return failureResponse(
        c,
        new AgentFailure(503, 'starting', 'the agent is still starting; retry shortly'),
      );
    }
    return next();
  });
  if (deps.internal !== undefined) app.route('/v1/internal', deps.internal);

  app.use('/v1/*', async (c, next) => {
    if (c.req.path.startsWith('/v1/internal/')) return next();
    if (!tokenMatches(deps.token, bearerToken(c))) {
      c.header('WWW-Authenticate', 'Bearer');
      return failureResponse(c, new AgentFailure(401, 'unauthorized', 'missing or wrong bearer token'));
    }
    return next();
  });

  app.get('/v1/facts', async (c) => c.json(await driver.facts()));
  app.get('/v1/fencing', (c) =>
    c.json({ armed: deps.fencing?.isArmed() ?? false, enabled: deps.fencing?.enabled ?? false }),
  );
  app.put('/v1/fencing', async (c) => {
    const body = await readBody(c, fencingRequestSchema);
    if (!deps.fencing) throw new AgentFailure(501, 'not_supported', 'this agent holds no lease to fence on');
    await deps.fencing.set(body.armed);
    return c.json({ armed: deps.fencing.isArmed(), enabled: deps.fencing.enabled });
  });
  app.get('/v1/guests', async (c) => c.json({ guests: await driver.listGuests() }));

  app.get('/v1/guests/:id', async (c) => {
    const id = c.req.param('id');
    const guest = await driver.getGuest(id);
    if (guest === null) throw guestNotFound(id);
    return c.json(guest);
  });

  app.put('/v1/guests/:id', async (c) => {
    const id = c.req.param('id');
    const spec = await readBody(c, guestSpecSchema);
    if (spec.id !== id)
      throw new AgentFailure(400, 'id_mismatch', `id: must equal the path id '${id}'`, 'id');
    return c.json(await serialised(id, () => driver.defineGuest(spec)));
  });

  app.post('/v1/guests/:id/start', async (c) => {
    const id = c.req.param('id');
    return c.json(await serialised(id, () => driver.startGuest(id)));
  });
  app.post('/v1/guests/:id/stop', async (c) => {
    const id = c.req.param('id');
    return c.json(await serialised(id, () => driver.stopGuest(id)));
  });
  app.post('/v1/guests/:id/resume', async (c) => {
    const id = c.req.param('id');
    // An empty body is {} (the schema defaults it): a plain resume, refused for a source whose guest went elsewhere.
    const request = await readBody(c, resumeRequestSchema);
    return c.json(await serialised(id, () => driver.resumeGuest(id, request)));
  });
  app.post('/v1/guests/:id/pause', async (c) => {
    const id = c.req.param('id');
    return c.json(await serialised(id, () => driver.pauseGuest(id)));
  });
  app.delete('/v1/guests/:id', async (c) => {
    const id = c.req.param('id');
    return c.json({ destroyed: await serialised(id, () => driver.destroyGuest(id)) });
  });

  app.post('/v1/guests/:id/prepare-incoming', async (c) => {
    const id = c.req.param('id');
    const request = await readBody(c, prepareIncomingRequestSchema);
    if (request.spec.id !== id) {
      throw new AgentFailure(400, 'id_mismatch', `spec.id: must equal the path id '${id}'`, 'spec.id');
    }
    return c.json(await serialised(id, () => driver.prepareIncoming(id, request)));
  });

  app.post('/v1/guests/:id/migration', async (c) => {
    const id = c.req.param('id');
    const request = await readBody(c, startMigrationRequestSchema);
    return c.json(await serialised(id, () => driver.startMigration(id, request)));
  });
  app.get('/v1/guests/:id/migration', async (c) => c.json(await driver.migrationStatus(c.req.param('id'))));
  app.post('/v1/guests/:id/migration/parameters', async (c) => {
    const id = c.req.param('id');
    const parameters = await readBody(c, migrationParametersSchema);
    return c.json(await serialised(id, () => driver.setMigrationParameters(id, parameters)));
  });
  app.post('/v1/guests/:id/migration/post-copy', async (c) => {
    const id = c.req.param('id');
    return c.json(await serialised(id, () => driver.startPostCopy(id)));
  });
  app.post('/v1/guests/:id/migration/cancel', async (c) => {
    const id = c.req.param('id');
    return c.json(await serialised(id, () => driver.cancelMigration(id)));
  });
  app.route('/v1/network', networkProbeRoutes(probes));

  app.post('/v1/guests/:id/cleanup', async (c) => {
    const id = c.req.param('id');
    const request = await readBody(c, cleanupRequestSchema);
    return c.json(await serialised(id, () => driver.cleanup(id, request)));
  });

  // Cold migration of local disks: the source exports, the destination imports (see agent-contract.ts).
  app.post('/v1/guests/:id/disks/:diskId/export', async (c) => {
    const { id, diskId } = c.req.param();
    const request = await readBody(c, diskExportRequestSchema);
    return c.json(await serialised(id, () => driver.exportDisk(id, diskId, request)));
  });
  app.delete('/v1/guests/:id/disks/:diskId/export', async (c) => {
    const { id, diskId } = c.req.param();
    return c.json(await serialised(id, () => driver.stopDiskExport(id, diskId)));
  });
  app.post('/v1/guests/:id/disks/:diskId/import', async (c) => {
    const { id, diskId } = c.req.param();
    const request = await readBody(c, diskImportRequestSchema);
    return c.json(await serialised(id, () => driver.importDisk(id, diskId, request)));
  });
  app.get('/v1/guests/:id/disks/:diskId/import', async (c) => {
    const { id, diskId } = c.req.param();
    return c.json(await driver.diskImportStatus(id, diskId));
  });

  return app;
}
