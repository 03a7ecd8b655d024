import os from 'node:os';
import path from 'node:path';
import {
  DEFAULTS,
  type Env,
  EnvReader,
  type EtcdSettings,
  influxWrite,
  type InfluxWrite,
  readEtcd,
  readInflux,
} from '../domain/config.ts';
import { DEFAULT_DN_TEMPLATE, dnTemplateProblem } from './drivers/qemu-tls.ts';
import { MAX_LINK_MBPS } from './facts.ts';
import { DEFAULT_REPORT_INTERVAL_S } from '../domain/guest-reports.ts';
import type { SimHostProfile } from './drivers/sim.ts';
import type { Logger } from './log.ts';
import type { PeerHost } from './peers.ts';

/** The etcd connection (endpoints, prefix, TLS, auth) and the lease's TTL. */
export interface LivenessOptions extends EtcdSettings {
  ttlSeconds: number;
}

export interface MetricsOptions {
  url: string;
  database: string;
  intervalSeconds: number;
  /** How points are written (INFLUX_API and its credentials); absent: 1.x /write on `database`, no auth. */
  write?: InfluxWrite;
}

export interface RegistrationOptions {
  apiUrl: string;
  /**
   * What the agent registers with: absent, its own credential (the production way). An admin API token
   * registers a host that never enrolled (test stacks that hand agents their credential directly).
   */
  apiToken?: string;
  /**
   * AGENT_ENROLMENT_TOKEN: a one-time `vme_…` token (POST /v1/enrolment-tokens) the agent trades for its own
   * credential when <dir>/credential does not exist yet (POST /v1/hosts/enrol).
   */
  enrolmentToken?: string;
  /** AGENT_REPORT_INTERVAL_S: how often the agent reports its guests when nothing changed (domain/guest-reports.ts). */
  reportIntervalS?: number;
}

/** Everything startAgent() needs; main.ts builds it from the environment, tests build it directly. */
export interface AgentOptions {
  name: string;
  /** Interface to listen on. */
  host: string;
  /** 0 picks a free port. */
  port: number;
  /** The agent's own state: host-id, guests/<id>/ (spec, desired state, QEMU files, local disks). */
  dir: string;
  /**
   * This host's own credential, accepted on /v1. Absent (production): read from <dir>/credential, which
   * enrolment writes (registration.enrolmentToken). Tests hand it over directly.
   */
  token?: string;
  /**
   * AGENT_PEER_TOKEN: what the fleet's agents present to each other, accepted only on the peer routes
   * (agent/server.ts isPeerRoute). Absent: `token` when given (test agents sharing one), else none.
   */
  peerToken?: string;
  driver: 'qemu' | 'sim';
  sharedStorageDir: string;
  guestImageDir: string;
  migrationAddress: string | null;
  /**
   * AGENT_MIGRATION_LINK_MBPS: the migration link's speed in megabits per second, reported in the facts
   * (auto bandwidth is a share of it). Absent: the qemu driver reads the speed of the interface that
   * carries the migration address (the management address without one). The sim driver reports its
   * modelled link (sim.linkBytesPerSec: AGENT_SIM_LINK_MBPS, else this variable, else 10000).
   */
  migrationLinkMbps?: number;
  networks: string[];
  /** Advertised base URL; defaults to http://<host>:<port> (0.0.0.0 advertised as 127.0.0.1). */
  publicUrl?: string;
  cpus?: number;
  memoryMb?: number;
  /** Sim host facts and link speed; unset fields take realistic defaults. */
  sim?: Partial<SimHostProfile>;
  /** null: no etcd lease (unit tests, benchmarks without etcd). */
  liveness: LivenessOptions | null;
  /**
   * Stop (fence) the guests when the lease cannot be renewed within the fencing deadline, and do not
   * restart them when the previous agent's last renewal is older than that (domain/fencing.ts).
   * Default true; false only logs, for hosts whose guests are never restarted elsewhere.
   */
  fenceOnLeaseLoss?: boolean;
  /** null: no InfluxDB writes. */
  metrics: MetricsOptions | null;
  /** null: no registration with the API. */
  registration: RegistrationOptions | null;
  /**
   * Hosts this agent may migrate to and from, copy disks with and probe, besides those the API's
   * registration answer lists (agent/peers.ts); read at each check, so agents started together can
   * name each other. An agent without registration and without peers refuses every migration uri,
   * disk import and network probe: nothing is trusted by default, loopback included. Tests and
   * benchmarks that run agents on one machine list them here (test/agent/agents.ts).
   */
  peers?: () => readonly PeerHost[];
  /** Overrides the persisted host id (benchmarks with many hosts). */
  hostId?: string;
  qemuBinary?: string;
  /** How long a stopping QEMU may take after `quit` before it is killed. */
  stopGraceMs?: number;
  /**
   * Migration TLS: the CA certificate (ca-cert.pem) and, under hosts/<name>/, each host's own
   * credentials (ca-cert.pem, server-cert.pem, server-key.pem, client-cert.pem, client-key.pem,
   * dh-params.pem); default ${VMMIG_CACHE:-$HOME/.cache/vmmig}/tls, where scripts/setup.sh makes the CA.
   */
  tlsDir?: string;
  /**
   * The CA key that issues this host's credentials when hosts/<name>/ lacks fitting ones (dev and tests
   * only; agent/tls-issue.ts). null: never issue. Default: <tlsDir>/ca-key.pem when tlsDir is left to
   * its default (the dev cache dir), else none.
   */
  tlsCaKey?: string | null;
  /**
   * The subject DN of every host's certificate, `{host}` standing for the host's name; a TLS server
   * admits only the peer host's DN (QEMU authz-simple). Default CN={host}.
   */
  tlsDnTemplate?: string;
  log?: Logger;
}

function cacheDir(env: Env): string {
  return env.VMMIG_CACHE || path.join(env.HOME ?? os.homedir(), '.cache', 'vmmig');
}

export function defaultGuestImageDir(env: Env): string {
  return path.join(cacheDir(env), 'guest-image');
}

/** Where scripts/setup.sh puts the migration TLS CA (and agents their own certificates, hosts/<name>/). */
export function defaultTlsDir(env: Env): string {
  return path.join(cacheDir(env), 'tls');
}

/**
 * The CA key an agent may issue its own certificates with: AGENT_TLS_CA_KEY, else the dev CA key in the
 * default TLS dir when AGENT_TLS_DIR is not set (a production TLS dir never implies a key), else none.
 */
export function tlsCaKeyFromEnv(env: Env): string | null {
  if (env.AGENT_TLS_CA_KEY) return path.resolve(env.AGENT_TLS_CA_KEY);
  return env.AGENT_TLS_DIR ? null : path.join(defaultTlsDir(env), 'ca-key.pem');
}

/** The TLS options startAgent() falls back to when a caller leaves them out. */
export function tlsDefaults(options: Pick<AgentOptions, 'tlsDir' | 'tlsCaKey' | 'tlsDnTemplate'>, env: Env) {
  const tlsDir = options.tlsDir ?? defaultTlsDir(env);
  return {
    tlsDir,
    tlsCaKey:
      options.tlsCaKey !== undefined
        ? options.tlsCaKey
        : options.tlsDir === undefined
          ? path.join(tlsDir, 'ca-key.pem')
          : null,
    tlsDnTemplate: options.tlsDnTemplate ?? DEFAULT_DN_TEMPLATE,
  };
}

function readDnTemplate(r: EnvReader): string | undefined {
  const template = r.optional('AGENT_TLS_DN');
  if (template === undefined) return undefined;
  const problem = dnTemplateProblem(template);
  if (problem !== null) r.problem(`AGENT_TLS_DN: ${problem}`);
  return template;
}

/** A link speed in megabits per second (at most 10 Tbit/s: more is bits for megabits); undefined: unset. */
function readLinkMbps(r: EnvReader, name: string): number | undefined {
  const raw = r.optional(name);
  const mbps = r.optionalInt(name, 1);
  if (mbps !== undefined && mbps > MAX_LINK_MBPS) {
    r.problem(`${name} must be megabits per second, at most ${MAX_LINK_MBPS}, got '${raw}'`);
    return undefined;
  }
  return mbps;
}

/** AGENT_MIGRATION_LINK_MBPS, validated; undefined when unset. Throws naming the variable. */
export function migrationLinkMbpsSetting(env: Env, name = 'AGENT_MIGRATION_LINK_MBPS'): number | undefined {
  const r = new EnvReader(env);
  return r.result(readLinkMbps(r, name));
}

/** The sim's modelled link: AGENT_SIM_LINK_MBPS, else the migration link's. */
function readSimProfile(r: EnvReader, migrationLinkMbps: number | undefined): Partial<SimHostProfile> {
  const linkMbps = readLinkMbps(r, 'AGENT_SIM_LINK_MBPS') ?? migrationLinkMbps;
  const profile: Partial<SimHostProfile> = {
    cpuModel: r.optional('AGENT_CPU_MODEL'),
    microcode: r.optional('AGENT_MICROCODE'),
    kernel: r.optional('AGENT_KERNEL'),
    qemuVersion: r.optional('AGENT_QEMU_VERSION'),
    linkBytesPerSec: linkMbps === undefined ? undefined : (linkMbps * 1e6) / 8,
  };
  return Object.fromEntries(Object.entries(profile).filter(([, v]) => v !== undefined));
}

const HTTP = ['http:', 'https:'];

/**
 * The agent's whole environment (see agent/main.ts for the list), every problem kept in `r` so that start-up
 * names them all at once.
 */
export function readAgentOptions(r: EnvReader): AgentOptions {
  // Read even without API_URL: a bad value is named whatever else is set.
  const reportIntervalS = r.int('AGENT_REPORT_INTERVAL_S', DEFAULT_REPORT_INTERVAL_S, 1, 3600);
  const env = r.env;
  const driver = r.oneOf('AGENT_DRIVER', ['qemu', 'sim'] as const, 'qemu');
  if (!r.isSet('AGENT_PORT')) r.required('AGENT_PORT', '0 picks a free port');
  const port = r.int('AGENT_PORT', 0, 0, 65535);
  const dir = r.required('AGENT_DIR', "this host's state: host id, credential, guests");
  const sharedStorageDir = r.required(
    'SHARED_STORAGE_DIR',
    'where shared disks live, the same path on every host',
  );
  const etcd = readEtcd(r);
  const influx = readInflux(r);
  const apiUrl = r.isSet('API_URL') ? r.url('API_URL', '', HTTP) : undefined;
  const publicUrl = r.isSet('AGENT_URL') ? r.url('AGENT_URL', '', HTTP) : undefined;
  const enrolmentToken = r.optional('AGENT_ENROLMENT_TOKEN');
  if (enrolmentToken !== undefined && apiUrl === undefined) {
    r.problem('AGENT_ENROLMENT_TOKEN is set without API_URL: enrolment goes through the API');
  }
  const peerToken = r.optional('AGENT_PEER_TOKEN');
  const migrationLinkMbps = readLinkMbps(r, 'AGENT_MIGRATION_LINK_MBPS');
  return {
    name: r.required('AGENT_NAME', "this host's name"),
    host: r.string('AGENT_HOST', '127.0.0.1').trim(),
    port,
    dir: path.resolve(dir),
    ...(peerToken !== undefined ? { peerToken } : {}),
    driver,
    sharedStorageDir: path.resolve(sharedStorageDir),
    guestImageDir: path.resolve(r.optional('GUEST_IMAGE_DIR') ?? defaultGuestImageDir(env)),
    tlsDir: path.resolve(r.optional('AGENT_TLS_DIR') ?? defaultTlsDir(env)),
    tlsCaKey: tlsCaKeyFromEnv(env),
    tlsDnTemplate: readDnTemplate(r),
    migrationAddress: r.optional('MIGRATION_ADDRESS')?.trim() ?? null,
    migrationLinkMbps,
    networks: r.list('AGENT_NETWORKS', DEFAULTS.agentNetworks),
    publicUrl,
    cpus: r.optionalInt('AGENT_CPUS', 1),
    memoryMb: r.optionalInt('AGENT_MEMORY_MB', 1),
    sim: readSimProfile(r, migrationLinkMbps),
    liveness: { ...etcd, ttlSeconds: r.int('HEALTH_TTL_S', DEFAULTS.healthTtlSeconds, 1) },
    fenceOnLeaseLoss: r.bool('FENCE_ON_LEASE_LOSS', true),
    metrics: {
      url: influx.url,
      database: influx.database,
      intervalSeconds: r.int('METRICS_INTERVAL_S', DEFAULTS.metricsIntervalSeconds, 1),
      write: influxWrite(influx),
    },
    registration:
      apiUrl !== undefined
        ? {
            apiUrl,
            ...(enrolmentToken !== undefined ? { enrolmentToken } : {}),
            reportIntervalS,
          }
        : null,
  };
}

/** Reads the agent's environment; throws a ConfigError naming every bad variable. */
export function agentOptionsFromEnv(env: Env): AgentOptions {
  const r = new EnvReader(env);
  return r.result(readAgentOptions(r));
}
