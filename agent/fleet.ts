import { Etcd3, type Lease } from 'etcd3';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { z } from 'zod';
import { type GuestSpec, guestSpecSchema } from '../domain/agent-contract.ts';
import { etcdClientOptions } from '../domain/config.ts';
import { configOrExit } from '../domain/config/startup.ts';
import { hostCredential } from '../domain/host-credential.ts';
import type { SimHostProfile } from './drivers/sim.ts';
import { SharedKeepalive } from './fleet-keepalive.ts';
import { FleetMetrics } from './fleet-metrics.ts';
import { type FleetHostPlan, type FleetHostSize, planFleet, registrationDelayMs } from './fleet-plan.ts';
import { readSimFleetOptions } from './fleet-settings.ts';
import { loadOrCreateHostId } from './host-id.ts';
import { exitOnSignal } from './exit-on-signal.ts';
import { mapLimited } from '../domain/map-limited.ts';
import { consoleLogger, errorMessage, type Logger } from './log.ts';
import type { PeerHost } from './peers.ts';
import type { LivenessOptions, MetricsOptions } from './settings.ts';
import { type RunningAgent, startAgent } from './start-agent.ts';

export interface SimFleetRegistration {
  apiUrl: string;
  /** An admin token to register with (hosts the API does not know yet); absent: each host's own credential. */
  apiToken?: string;
  /** Refresh period of every host's registration (default a minute). */
  refreshMs?: number;
  /** The hosts' first registrations are spread evenly over this long (default refreshMs). */
  spreadMs?: number;
  /** How often each host reports its guests when nothing changed (RegistrationOptions.reportIntervalS). */
  reportIntervalS?: number;
}

export interface SimFleetOptions {
  count: number;
  /** Each host's state in <dir>/<name>/ (host-id, liveness.json, fencing.json, credential). */
  dir: string;
  /** Host names are the prefix and the host's number: `sim-0001`. */
  prefix: string;
  /** Picks each host's size from `sizes`: the same seed, the same fleet. */
  seed: number;
  sizes?: readonly FleetHostSize[];
  /** Interface every host listens on, each on a port of its own (0: any free one). */
  host: string;
  sharedStorageDir: string;
  networks: string[];
  /** Facts common to every host (CPU model, kernel, link speed); `sizes` overrides cpus and memory. */
  sim?: Partial<SimHostProfile>;
  liveness: LivenessOptions | null;
  fenceOnLeaseLoss?: boolean;
  metrics: MetricsOptions | null;
  registration: SimFleetRegistration | null;
  /**
   * Each host's own credential (what the workers present to its agent, and what it registers with
   * without an admin apiToken). Absent: <dir>/<name>/credential, as a single agent reads it.
   */
  credentialFor?: (hostId: string, name: string) => string;
  /** AGENT_PEER_TOKEN: what the fleet's agents present to each other (and to other agents). */
  peerToken?: string;
  /** Peers besides the registered hosts (fleets that do not register). */
  peers?: () => readonly PeerHost[];
  /** The guests each host runs from the start; whoever seeds them holds their inventory rows. */
  guestsFor?: (host: FleetHostPlan & { hostId: string }) => readonly GuestSpec[];
  /** Hosts started at once (default 16). */
  startConcurrency?: number;
  /** The fleet's own lines. */
  log?: Logger;
  /** Each host's lines (default: the fleet log, prefixed with the host's name). */
  hostLog?: (name: string) => Logger;
}

export interface FleetHost extends FleetHostPlan {
  hostId: string;
  url: string;
  dir: string;
  agent: RunningAgent;
}

export interface SimFleet {
  hosts: FleetHost[];
  /** Stops every host (its lease revoked) and the shared clients. Idempotent. */
  stop(): Promise<void>;
}

/**
 * Many sim hosts in this process, each a whole host as the control plane sees it: its own host id, agent
 * (HTTP server and port), lease and health key, facts, metrics series and registration. What is a cost per
 * process is shared: one etcd client for every lease, one InfluxDB writer for every host's points, and
 * registrations spread over the refresh period.
 */
export async function startSimFleet(options: SimFleetOptions): Promise<SimFleet> {
  const log = options.log ?? consoleLogger('sim-fleet');
  const hostLog = options.hostLog ?? ((name: string) => (line: string) => log(`${name}: ${line}`));
  const etcdClient =
    options.liveness === null ? null : new Etcd3(etcdClientOptions(options.liveness, readFileSync));
  const keepalive = etcdClient === null ? null : new SharedKeepalive(etcdClient);
  const metrics = options.metrics === null ? null : new FleetMetrics(options.metrics, log);
  const registration = options.registration;
  const refreshMs = registration?.refreshMs;
  const spreadMs = registration?.spreadMs ?? refreshMs ?? 60_000;
  const hosts: FleetHost[] = [];
  const removals: (() => void)[] = [];

  let stopping: Promise<void> | null = null;
  const stop = (): Promise<void> =>
    (stopping ??= (async () => {
      metrics?.stop();
      for (const remove of removals) remove();
      await mapLimited(hosts, 64, (host) =>
        host.agent.stop().catch((error) => log(`${host.name}: stop failed: ${errorMessage(error)}`)),
      );
      keepalive?.close();
      etcdClient?.close();
    })());

  const startHost = async (plan: FleetHostPlan): Promise<void> => {
    const dir = path.join(options.dir, plan.name);
    const hostId = await loadOrCreateHostId(dir);
    const agent = await startAgent(
      {
        name: plan.name,
        host: options.host,
        port: 0,
        dir,
        hostId,
        ...(options.credentialFor ? { token: options.credentialFor(hostId, plan.name) } : {}),
        ...(options.peerToken !== undefined ? { peerToken: options.peerToken } : {}),
        driver: 'sim',
        sharedStorageDir: options.sharedStorageDir,
        guestImageDir: dir,
        migrationAddress: null,
        networks: options.networks,
        sim: options.sim,
        cpus: plan.cpus,
        memoryMb: plan.memoryMb,
        liveness: options.liveness,
        fenceOnLeaseLoss: options.fenceOnLeaseLoss,
        metrics: null,
        registration:
          registration === null
            ? null
            : {
                apiUrl: registration.apiUrl,
                ...(registration.apiToken !== undefined ? { apiToken: registration.apiToken } : {}),
                ...(registration.reportIntervalS !== undefined
                  ? { reportIntervalS: registration.reportIntervalS }
                  : {}),
              },
        peers: options.peers,
        log: hostLog(plan.name),
      },
      {
        ...(etcdClient === null || keepalive === null
          ? {}
          : { etcdClient, renewLease: (lease: Lease) => keepalive.renew(lease) }),
        recordRenewals: false,
        registrationDelayMs: registrationDelayMs(plan.index, options.count, spreadMs),
        ...(refreshMs === undefined ? {} : { registrationRefreshMs: refreshMs }),
        simGuests: options.guestsFor?.({ ...plan, hostId }) ?? [],
      },
    );
    hosts.push({ ...plan, hostId, url: agent.url, dir, agent });
    if (metrics !== null) {
      removals.push(metrics.add({ hostId, hostName: plan.name, usage: () => agent.driver.usage() }));
    }
  };

  try {
    await mapLimited(
      planFleet({ count: options.count, prefix: options.prefix, seed: options.seed, sizes: options.sizes }),
      options.startConcurrency ?? 16,
      startHost,
    );
  } catch (error) {
    await stop();
    throw error;
  }
  hosts.sort((a, b) => a.index - b.index);
  metrics?.start();
  log(`${hosts.length} sim hosts running (${options.prefix}…, dir ${options.dir})`);
  return { hosts, stop };
}

/**
 * `tsx agent/fleet.ts`: a sim fleet configured by the environment (agent/fleet-settings.ts; docs/deployment.md,
 * "Sim fleet"). A bad variable exits 2 naming it; SIGINT/SIGTERM stop every host (leases revoked) and exit 0.
 */
async function main(): Promise<void> {
  const settings = configOrExit('sim-fleet', readSimFleetOptions, process.env);
  const log = consoleLogger('sim-fleet');
  const { credentialKey, guestsFile, quiet, ...fleetOptions } = settings;
  const seeded = guestsFile === null ? null : readGuestsFile(guestsFile);
  const startedMs = performance.now();
  const fleet = await startSimFleet({
    ...fleetOptions,
    log,
    ...(quiet ? { hostLog: () => () => undefined } : {}),
    ...(credentialKey === null
      ? {}
      : { credentialFor: (hostId: string) => hostCredential(credentialKey, hostId, 1) }),
    ...(seeded === null ? {} : { guestsFor: (host: FleetHostPlan) => seeded[host.name] ?? [] }),
  });
  log(
    `started in ${Math.round(performance.now() - startedMs)} ms; RSS ${Math.round(process.memoryUsage().rss / 2 ** 20)} MiB`,
  );
  exitOnSignal(log, () => fleet.stop(), `; stopping ${fleet.hosts.length} hosts`);
}

const guestsFileSchema = z.record(z.string(), z.array(guestSpecSchema));

/**
 * SIM_FLEET_GUESTS_FILE: `{ "<host name>": [GuestSpec, …], … }`, as the benchmark that seeds them (and inserts
 * their inventory rows) wrote it. A file that is not that exits 2 naming the variable and the first bad field.
 */
function readGuestsFile(file: string): Record<string, GuestSpec[]> {
  let parsed: ReturnType<typeof guestsFileSchema.safeParse>;
  try {
    parsed = guestsFileSchema.safeParse(JSON.parse(readFileSync(file, 'utf8')));
  } catch (error) {
    console.error(`sim-fleet: cannot start: SIM_FLEET_GUESTS_FILE: ${errorMessage(error)}`);
    process.exit(2);
  }
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    console.error(
      `sim-fleet: cannot start: SIM_FLEET_GUESTS_FILE: ${issue?.path.join('.') ?? ''}: ${issue?.message ?? 'invalid'}`,
    );
    process.exit(2);
  }
  return parsed.data;
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((error) => {
    console.error(`sim-fleet: ${errorMessage(error)}`);
    process.exit(1);
  });
}
