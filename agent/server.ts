import { Hono } from 'hono';
import { z } from 'zod';
import {
  cleanupRequestSchema,
  diskExportRequestSchema,
  diskImportRequestSchema,
  guestPingRequestSchema,
  type GuestPingResult,
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
import {
  admitImport,
  admitListenAddress,
  admitMigration,
  admitProbe,
  incomingView,
  type PeerAccess,
} from './migration-target.ts';
import { MigrationSignals, migrationWaitRequest, waitForMigrationChange } from './migration-wait.ts';
import { NetworkProbes, networkProbeRoutes } from './network-probe.ts';
import { errorMessage, type Logger } from './log.ts';
import { PeerStore } from './peers.ts';
import { QmpClosedError, QmpError, QmpTimeoutError } from './qmp.ts';

const fencingRequestSchema = z.strictObject({ armed: z.boolean() });

export interface AgentAppDeps {
  driver: HypervisorDriver;
  /**
   * This host's own credential (domain/host-credential.ts): callers of /v1 must send `Authorization: Bearer
   * <credential>`. A function when it is known only once the host enrolled (null until then: every call a 401).
   */
  token: string | (() => string | null);
  /**
   * AGENT_PEER_TOKEN, shared by the fleet's agents: accepted on the peer routes only (isPeerRoute: the
   * confirmations of migration-target.ts and /v1/internal), refused everywhere else. Null/absent: none.
   */
  peerToken?: string | null;
  log: Logger;
  /** Agent-to-agent routes mounted at /v1/internal: the host credential or the peer token. */
  internal?: Hono;
  /**
   * The hosts this agent may migrate to/from, copy disks with and probe (agent/peers.ts), and the
   * credential it presents to them. Absent: no peer at all, every migration uri, import and probe is
   * refused (400).
   */
  peers?: PeerAccess;
  /** While false (the driver still reattaches to its guests) every call gets a 503. */
  isReady?: () => boolean;
  /** Migration-network reachability probes; their listeners close on their own. */
  probes?: NetworkProbes;
  /** Whether the host fences its guests on lease loss (agent/fencing-arm.ts). */
  fencing?: { isArmed(): boolean; set(armed: boolean): Promise<void>; enabled: boolean };
}

/**
 * The routes one agent calls on another (agent/peer-client.ts), where AGENT_PEER_TOKEN is accepted: the
 * confirmations (GET …/incoming, GET …/disks/:diskId/export) and /v1/internal (the sim's transfers). Reads only,
 * besides the sim's events.
 */
export function isPeerRoute(method: string, path: string): boolean {
  const verb = method.toUpperCase();
  if (path.startsWith('/v1/internal/')) return true;
  if (verb !== 'GET' && verb !== 'HEAD') return false;
  return (
    /^\/v1\/guests\/[^/]+\/incoming$/.test(path) || /^\/v1\/guests\/[^/]+\/disks\/[^/]+\/export$/.test(path)
  );
}

/** The host-agent HTTP API of domain/agent-contract.ts. */
export function createAgentApp(deps: AgentAppDeps): Hono {
  const { driver, log } = deps;
  const app = new Hono();
  const perGuest = new KeyedMutex();
  const migrationSignals = new MigrationSignals();
  driver.onMigrationEvent?.((id) => migrationSignals.notify(id));
  const probes = deps.probes ?? new NetworkProbes();
  const peers: PeerAccess = deps.peers ?? {
    store: new PeerStore(),
    credential: deps.peerToken ?? '',
    selfUrl: () => '',
  };
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
  app.use('/v1/*', async (c, next) => {
    const given = bearerToken(c);
    const own = typeof deps.token === 'string' ? deps.token : deps.token();
    if (own !== null && tokenMatches(own, given)) return next();
    if (deps.peerToken && tokenMatches(deps.peerToken, given)) {
      if (isPeerRoute(c.req.method, c.req.path)) return next();
      return failureResponse(
        c,
        new AgentFailure(
          403,
          'forbidden',
          `the peer token is good only for the peer routes, not ${c.req.method} ${c.req.path}`,
        ),
      );
    }
    c.header('WWW-Authenticate', 'Bearer');
    return failureResponse(c, new AgentFailure(401, 'unauthorized', 'missing or wrong bearer token'));
  });
  if (deps.internal !== undefined) app.route('/v1/internal', deps.internal);

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

  // Not serialised: a read of the guest itself, which must not wait behind a migration step.
  app.post('/v1/guests/:id/guest-ping', async (c) => {
    const id = c.req.param('id');
    const request = await readBody(c, guestPingRequestSchema);
    const started = performance.now();
    const answered = await driver.guestPing(id, request.timeoutMs);
    const result: GuestPingResult = { answered, ms: Math.round(performance.now() - started) };
    return c.json(result);
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
    if (request.listenAddress !== undefined) admitListenAddress(request.listenAddress);
    if (request.spec.id !== id) {
      throw new AgentFailure(400, 'id_mismatch', `spec.id: must equal the path id '${id}'`, 'spec.id');
    }
    return c.json(await serialised(id, () => driver.prepareIncoming(id, request)));
  });

  app.post('/v1/guests/:id/migration', async (c) => {
    const id = c.req.param('id');
    const request = await readBody(c, startMigrationRequestSchema);
    // Before the guest's turn: a uri of the wrong shape or of no registered host never reaches a driver.
    const confirm = await admitMigration(peers, driver.kind, id, request);
    return c.json(await serialised(id, () => driver.startMigration(id, request, confirm)));
  });
  // Asked by a source agent before it sends this guest here (see migration-target.ts).
  app.get('/v1/guests/:id/incoming', async (c) => {
    const id = c.req.param('id');
    const incoming = await driver.incomingMigration(id);
    if (incoming === null) {
      throw new AgentFailure(
        404,
        'incoming_not_found',
        `no incoming migration of guest '${id}' is prepared on this host`,
        'id',
      );
    }
    return c.json(incomingView(incoming, driver.kind));
  });
  // A long poll: `?waitMs=500&unless=active` answers as soon as the status is no longer `active`.
  app.get('/v1/guests/:id/migration', async (c) => {
    const id = c.req.param('id');
    const wait = migrationWaitRequest({ waitMs: c.req.query('waitMs'), unless: c.req.query('unless') });
    return c.json(await waitForMigrationChange(() => driver.migrationStatus(id), migrationSignals, id, wait));
  });
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
  app.route(
    '/v1/network',
    networkProbeRoutes(probes, (address) => admitProbe(peers, address)),
  );

  app.post('/v1/guests/:id/cleanup', async (c) => {
    const id = c.req.param('id');
    const request = await readBody(c, cleanupRequestSchema);
    return c.json(await serialised(id, () => driver.cleanup(id, request)));
  });

  // Cold migration of local disks: the source exports, the destination imports (see agent-contract.ts).
  app.post('/v1/guests/:id/disks/:diskId/export', async (c) => {
    const { id, diskId } = c.req.param();
    const request = await readBody(c, diskExportRequestSchema);
    if (request.listenAddress !== undefined) admitListenAddress(request.listenAddress);
    return c.json(await serialised(id, () => driver.exportDisk(id, diskId, request)));
  });
  app.get('/v1/guests/:id/disks/:diskId/export', async (c) => {
    const { id, diskId } = c.req.param();
    const running = await driver.diskExport(id, diskId);
    if (running === null) {
      throw new AgentFailure(
        404,
        'export_not_found',
        `disk '${diskId}' of guest '${id}' is not exported on this host`,
        'diskId',
      );
    }
    return c.json(running);
  });
  app.delete('/v1/guests/:id/disks/:diskId/export', async (c) => {
    const { id, diskId } = c.req.param();
    return c.json(await serialised(id, () => driver.stopDiskExport(id, diskId)));
  });
  app.post('/v1/guests/:id/disks/:diskId/import', async (c) => {
    const { id, diskId } = c.req.param();
    const request = await readBody(c, diskImportRequestSchema);
    const confirm = await admitImport(peers, driver.kind, id, diskId, request);
    return c.json(await serialised(id, () => driver.importDisk(id, diskId, request, confirm)));
  });
  app.get('/v1/guests/:id/disks/:diskId/import', async (c) => {
    const { id, diskId } = c.req.param();
    return c.json(await driver.diskImportStatus(id, diskId));
  });

  return app;
}
