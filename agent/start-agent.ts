import { serve } from '@hono/node-server';
import { mkdir } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import type { Etcd3, Lease } from 'etcd3';
import type { Hono } from 'hono';
import type { GuestSpec } from '../domain/agent-contract.ts';
import { fenceAtStartup, fencingDeadlineMs, type StartupFencing } from '../domain/fencing.ts';
import type { AgentIdentity, HypervisorDriver } from './driver.ts';
import { QemuDriver } from './drivers/qemu.ts';
import { defaultSimProfile, SimDriver } from './drivers/sim.ts';
import { simInternalRoutes } from './drivers/sim-routes.ts';
import { enrol, readCredentialFile, writeCredentialFile } from './credential.ts';
import { readPlatformFacts } from './facts.ts';
import { loadOrCreateHostId } from './host-id.ts';
import { FencingArm } from './fencing-arm.ts';
import { Liveness, readLastRenewal } from './liveness.ts';
import { consoleLogger, errorMessage, type Logger } from './log.ts';
import { MetricsReporter } from './metrics.ts';
import { PeerStore } from './peers.ts';
import { Registration } from './register.ts';
import { StateReporter } from './state-reporter.ts';
import { createAgentApp } from './server.ts';
import { type AgentOptions, tlsDefaults } from './settings.ts';

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

/** In the agent dir: the send time of the last lease renewal etcd acknowledged (see fenceAtStartup). */
export const LIVENESS_STATE_FILE = 'liveness.json';
/** In the agent dir: whether the host fences its guests on lease loss (agent/fencing-arm.ts). */
export const FENCING_ARM_FILE = 'fencing.json';

interface StartupFencingPlan {
  /** Why the qemu driver must stop the guests the previous agent left, or null to start as before. */
  fenceReason: string | null;
  /** The previous agent's renewal whose deadline still runs, for the new lease to take over in time. */
  previousRenewal: { sentAtMs: number; deadlineMs: number } | undefined;
}

/** Reads what the previous agent on this dir recorded and decides whether its guests may run again. */
async function planStartupFencing(
  options: AgentOptions,
  fenceOnLeaseLoss: boolean,
  log: Logger,
): Promise<StartupFencingPlan> {
  if (options.liveness === null) return { fenceReason: null, previousRenewal: undefined };
  const previous = await readLastRenewal(path.join(options.dir, LIVENESS_STATE_FILE));
  const ownDeadlineMs = fencingDeadlineMs(options.liveness.ttlSeconds);
  // The previous lease ran on the previous agent's TTL.
  const deadlineMs = Math.min(ownDeadlineMs, previous?.deadlineMs ?? ownDeadlineMs);
  const decision: StartupFencing = fenceAtStartup({
    lastRenewalSentAtMs: previous?.sentAtMs ?? null,
    nowMs: Date.now(),
    deadlineMs,
  });
  if (!decision.fence) {
    if (previous === null) return { fenceReason: null, previousRenewal: undefined };
    log(`self-fencing at startup not needed: ${decision.reason}`);
    return { fenceReason: null, previousRenewal: { sentAtMs: previous.sentAtMs, deadlineMs } };
  }
  if (!fenceOnLeaseLoss) {
    log(`self-fencing at startup skipped (FENCE_ON_LEASE_LOSS is off): ${decision.reason}`);
    return { fenceReason: null, previousRenewal: undefined };
  }
  log(`self-fencing at startup: ${decision.reason}; the guests left here stay stopped`);
  return { fenceReason: decision.reason, previousRenewal: undefined };
}

function advertisedUrl(options: AgentOptions, port: number): string {
  if (options.publicUrl) return options.publicUrl.replace(/\/$/, '');
  const host = options.host === '0.0.0.0' || options.host === '::' ? '127.0.0.1' : options.host;
  return `http://${host.includes(':') ? `[${host}]` : host}:${port}`;
}

/** What the hosts of one process share, or are told apart by, when it runs many (agent/fleet.ts). */
export interface SharedAgentResources {
  /** One etcd client for every host's lease (each host still grants and revokes its own). */
  etcdClient?: Etcd3;
  /** Renews a lease over a stream shared by every host (LivenessOptions.renewLease). */
  renewLease?: (lease: Lease) => Promise<unknown>;
  /**
   * false: no liveness.json, so no write per renewal (sim fleets: their guests live in this process only, and a
   * restart finds none to fence). Default true.
   */
  recordRenewals?: boolean;
  /** The first registration waits this long, so that a fleet's hosts register one by one. */
  registrationDelayMs?: number;
  /** Registration refresh period (default the Registration's: a minute). */
  registrationRefreshMs?: number;
  /** The sim driver's guests running from the start (SimDriverOptions.seedGuests). */
  simGuests?: readonly GuestSpec[];
}

/** Runs one host agent in this process: HTTP API, driver, liveness lease, metrics, registration. */
export async function startAgent(
  options: AgentOptions,
  shared: SharedAgentResources = {},
): Promise<RunningAgent> {
  const log = options.log ?? consoleLogger(options.name);
  await mkdir(options.dir, { recursive: true });
  await mkdir(options.sharedStorageDir, { recursive: true });
  const hostId = options.hostId ?? (await loadOrCreateHostId(options.dir));
  // This host's own credential: handed over (tests), else the one enrolment stored, else enrolment below.
  let credential: string | null = options.token ?? (await readCredentialFile(options.dir));
  if (credential === null && !options.registration?.enrolmentToken) {
    throw new Error(
      `no credential in ${path.join(options.dir, 'credential')}: enrol this host (AGENT_ENROLMENT_TOKEN from vmctl enrolment-token-create, and API_URL)`,
    );
  }
  // What this agent presents to its peers: the fleet's peer token (accepted on the peer routes only).
  const peerCredential = options.peerToken ?? options.token ?? '';
  const fenceOnLeaseLoss = options.fenceOnLeaseLoss ?? true;
  const arm = new FencingArm(path.join(options.dir, FENCING_ARM_FILE), log);
  const startupFencing = await planStartupFencing(options, fenceOnLeaseLoss && (await arm.load()), log);
  const identity: AgentIdentity = {
    hostId,
    name: options.name,
    agentUrl: '',
    address: options.host,
    migrationAddress: options.migrationAddress,
    networks: options.networks,
    sharedStoragePath: options.sharedStorageDir,
  };
  // Registered hosts (from each registration answer) and configured ones; an unknown host makes the
  // agent register again before it refuses (agent/peers.ts).
  let registration: Registration | null = null;
  const peers = new PeerStore({
    configured: options.peers,
    refresh: options.registration === null ? undefined : async () => registration?.refreshNow(),
  });

  let driver: HypervisorDriver;
  let internal: Hono | undefined;
  if (options.driver === 'sim') {
    const profile = {
      ...defaultSimProfile,
      ...options.sim,
      ...(options.cpus === undefined ? {} : { cpus: options.cpus }),
      ...(options.memoryMb === undefined ? {} : { memoryMb: options.memoryMb }),
    };
    const sim = new SimDriver({ identity, profile, log, peerCredential, seedGuests: shared.simGuests });
    internal = simInternalRoutes(sim);
    driver = sim;
  } else {
    const platform = await readPlatformFacts({
      cpus: options.cpus,
      memoryMb: options.memoryMb,
      qemuBinary: options.qemuBinary,
      migrationAddress: options.migrationAddress ?? options.host,
      migrationLinkMbps: options.migrationLinkMbps,
    });
    driver = new QemuDriver({
      identity,
      agentDir: options.dir,
      guestImageDir: options.guestImageDir,
      platform,
      log,
      qemuBinary: options.qemuBinary,
      stopGraceMs: options.stopGraceMs,
      ...tlsDefaults(options, process.env),
      fenceAtStartup: startupFencing.fenceReason,
    });
  }

  let ready = false;
  const app = createAgentApp({
    driver,
    token: () => credential,
    peerToken: options.peerToken ?? null,
    log,
    internal,
    isReady: () => ready,
    peers: { store: peers, credential: peerCredential, selfUrl: () => identity.agentUrl },
    fencing:
      options.liveness === null
        ? undefined
        : { isArmed: () => arm.isArmed(), set: (armed) => arm.set(armed), enabled: fenceOnLeaseLoss },
  });
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
  if (credential === null && options.registration?.enrolmentToken) {
    try {
      const enrolled = await enrol({
        apiUrl: options.registration.apiUrl,
        enrolmentToken: options.registration.enrolmentToken,
        facts: () => driver.facts(),
        log,
      });
      await writeCredentialFile(options.dir, enrolled.credential);
      credential = enrolled.credential;
      peers.follow(enrolled.host);
      await arm.follow(enrolled.host);
      log(
        `enrolled with ${options.registration.apiUrl}; credential stored in ${path.join(options.dir, 'credential')}`,
      );
    } catch (error) {
      server.close();
      await driver.shutdown().catch(() => undefined);
      throw error;
    }
  }
  ready = true;
  log(`listening on ${identity.agentUrl} (driver ${driver.kind}, host id ${hostId}, dir ${options.dir})`);

  const fence = (reason: string): void => {
    if (!fenceOnLeaseLoss) {
      log(`self-fencing skipped (FENCE_ON_LEASE_LOSS is off): the guests keep running (${reason})`);
      return;
    }
    if (!arm.isArmed()) {
      log(
        `self-fencing skipped (host flag auto_migrate_on_host_down is off: nobody restarts them elsewhere): the guests keep running (${reason})`,
      );
      return;
    }
    driver.fence(reason).catch((error) => log(`self-fencing failed: ${errorMessage(error)}`));
  };
  const liveness =
    options.liveness === null
      ? null
      : new Liveness({
          ...options.liveness,
          hostId,
          name: options.name,
          agentUrl: () => identity.agentUrl,
          log,
          onFence: fence,
          stateFile:
            shared.recordRenewals === false ? undefined : path.join(options.dir, LIVENESS_STATE_FILE),
          previousRenewal: startupFencing.previousRenewal,
          client: shared.etcdClient,
          renewLease: shared.renewLease,
        });
  if (liveness !== null) {
    log(
      fenceOnLeaseLoss
        ? `self-fencing on: the guests stop when no lease renewal is acknowledged for ${liveness.fencingDeadlineMs} ms`
        : 'self-fencing off (FENCE_ON_LEASE_LOSS=false): a lost lease is only logged',
    );
  }
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

  registration =
    options.registration === null
      ? null
      : new Registration({
          apiUrl: options.registration.apiUrl,
          apiToken: options.registration.apiToken ?? credential ?? '',
          facts: () => driver.facts(),
          log,
          refreshMs: shared.registrationRefreshMs,
          onRegistered: async (hostView) => {
            peers.follow(hostView);
            await arm.follow(hostView);
          },
          peersRevision: () => peers.revision(),
        });
  const registrationDelay =
    registration !== null && shared.registrationDelayMs
      ? setTimeout(() => void registration?.refreshNow(), shared.registrationDelayMs).unref()
      : null;
  if (registrationDelay === null) registration?.start();
  const reporter =
    options.registration === null
      ? null
      : new StateReporter({
          apiUrl: options.registration.apiUrl,
          hostId,
          credential: () => options.registration?.apiToken ?? credential ?? '',
          guests: () => driver.listGuests(),
          log,
          intervalS: options.registration.reportIntervalS,
        });
  reporter?.start();

  let stopping: Promise<void> | null = null;
  const stop = (stopOptions: { leaveGuests?: boolean } = {}): Promise<void> =>
    (stopping ??= (async () => {
      log(stopOptions.leaveGuests ? 'stopping, leaving the guests running' : 'stopping');
      if (registrationDelay !== null) clearTimeout(registrationDelay);
      registration?.stop();
      reporter?.stop();
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
