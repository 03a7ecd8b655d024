import { serve } from '@hono/node-server';
import { mkdir } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import type { Hono } from 'hono';
import type { AgentIdentity, HypervisorDriver } from './driver.ts';
import { QemuDriver } from './drivers/qemu.ts';
import { defaultSimProfile, SimDriver } from './drivers/sim.ts';
import { simInternalRoutes } from './drivers/sim-routes.ts';
import { readPlatformFacts } from './facts.ts';
import { loadOrCreateHostId } from './host-id.ts';
import { Liveness } from './liveness.ts';
import { consoleLogger, errorMessage } from './log.ts';
import { MetricsReporter } from './metrics.ts';
import { Registration } from './register.ts';
import { createAgentApp } from './server.ts';
import { type AgentOptions, defaultTlsDir } from './settings.ts';

export interface RunningAgent {
  url: string;
  hostId: string;
  driver: HypervisorDriver;
  /**
   * Stops guests (keeping their desired state), revokes the lease, closes the server. Idempotent.
   * leaveGuests: keep the QEMU processes running for the next agent on this dir to reattach to.
   */
  stop(options?: { leaveGuests?: boolean }): Promise<void>;
}

function advertisedUrl(options: AgentOptions, port: number): string {
  if (options.publicUrl) return options.publicUrl.replace(/\/$/, '');
  const host = options.host === '0.0.0.0' || options.host === '::' ? '127.0.0.1' : options.host;
  return `http://${host.includes(':') ? `[${host}]` : host}:${port}`;
}

/** Runs one host agent in this process: HTTP API, driver, liveness lease, metrics, registration. */
export async function startAgent(options: AgentOptions): Promise<RunningAgent> {
  const log = options.log ?? consoleLogger(options.name);
  await mkdir(options.dir, { recursive: true });
  await mkdir(options.sharedStorageDir, { recursive: true });
  const hostId = options.hostId ?? (await loadOrCreateHostId(options.dir));
  const identity: AgentIdentity = {
    hostId,
    name: options.name,
    agentUrl: '',
    address: options.host,
    migrationAddress: options.migrationAddress,
    networks: options.networks,
    sharedStoragePath: options.sharedStorageDir,
  };

  let driver: HypervisorDriver;
  let internal: Hono | undefined;
  if (options.driver === 'sim') {
    const profile = {
      ...defaultSimProfile,
      ...options.sim,
      ...(options.cpus === undefined ? {} : { cpus: options.cpus }),
      ...(options.memoryMb === undefined ? {} : { memoryMb: options.memoryMb }),
    };
    const sim = new SimDriver({ identity, profile, log });
    internal = simInternalRoutes(sim);
    driver = sim;
  } else {
    const platform = await readPlatformFacts({
      cpus: options.cpus,
      memoryMb: options.memoryMb,
      qemuBinary: options.qemuBinary,
    });
    driver = new QemuDriver({
      identity,
      agentDir: options.dir,
      guestImageDir: options.guestImageDir,
      platform,
      log,
      qemuBinary: options.qemuBinary,
      stopGraceMs: options.stopGraceMs,
      tlsDir: options.tlsDir ?? defaultTlsDir(process.env),
    });
  }

  let ready = false;
  const app = createAgentApp({ driver, token: options.token, log, internal, isReady: () => ready });
  const server = serve({ fetch: app.fetch, hostname: options.host, port: options.port });
  await new Promise<void>((resolve, reject) => {
    server.once('listening', resolve);
    server.once('error', reject);
  });
  const port = (server.address() as AddressInfo).port;
  identity.agentUrl = advertisedUrl(options, port);

  try {
    await driver.init();
  } catch (error) {
    server.close();
    throw error;
  }
  ready = true;
  log(`listening on ${identity.agentUrl} (driver ${driver.kind}, host id ${hostId}, dir ${options.dir})`);

  const liveness =
    options.liveness === null
      ? null
      : new Liveness({
          ...options.liveness,
          hostId,
          name: options.name,
          agentUrl: () => identity.agentUrl,
          log,
          onLeaseLost: (reason) =>
            log(`liveness: self-fencing hook called (${reason}); guest fencing is not enabled yet`),
        });
  liveness?.start();

  const metrics =
    options.metrics === null
      ? null
      : new MetricsReporter({
          ...options.metrics,
          hostId,
          hostName: options.name,
          usage: () => driver.usage(),
          log,
        });
  metrics?.start();

  const registration =
    options.registration === null
      ? null
      : new Registration({ ...options.registration, facts: () => driver.facts(), log });
  registration?.start();

  let stopping: Promise<void> | null = null;
  const stop = (stopOptions: { leaveGuests?: boolean } = {}): Promise<void> =>
    (stopping ??= (async () => {
      log(stopOptions.leaveGuests ? 'stopping, leaving the guests running' : 'stopping');
      registration?.stop();
      metrics?.stop();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await (stopOptions.leaveGuests ? driver.detach() : driver.shutdown()).catch((error) =>
        log(`stopping guests failed: ${errorMessage(error)}`),
      );
      // Guests left running are still this host's: let the key expire unless the next agent renews it.
      await liveness?.stop({ revoke: !stopOptions.leaveGuests });
      log('stopped');
    })());

  return { url: identity.agentUrl, hostId, driver, stop };
}
