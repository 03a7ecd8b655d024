import os from 'node:os';
import path from 'node:path';
import {
  DEFAULTS,
  type Env,
  etcdSettings,
  influxSettings,
  intSetting,
  listSetting,
  requiredSetting,
} from '../domain/config.ts';
import { DEFAULT_DN_TEMPLATE, dnTemplateProblem } from './drivers/qemu-tls.ts';
import { MAX_LINK_MBPS } from './facts.ts';
import type { SimHostProfile } from './drivers/sim.ts';
import type { Logger } from './log.ts';
import type { PeerHost } from './peers.ts';

export interface LivenessOptions {
  endpoints: string[];
  prefix: string;
  ttlSeconds: number;
}

export interface MetricsOptions {
  url: string;
  database: string;
  intervalSeconds: number;
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

function dnTemplateSetting(env: Env): string | undefined {
  const template = env.AGENT_TLS_DN;
  if (template === undefined || template === '') return undefined;
  const problem = dnTemplateProblem(template);
  if (problem !== null) throw new Error(`AGENT_TLS_DN: ${problem}`);
  return template;
}

function optionalInt(env: Env, name: string, min: number): number | undefined {
  return env[name] === undefined || env[name] === '' ? undefined : intSetting(env, name, 0, min);
}

function booleanSetting(env: Env, name: string, fallback: boolean): boolean {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  if (raw === 'true' || raw === '1') return true;
  if (raw === 'false' || raw === '0') return false;
  throw new Error(`${name} must be true or false, got '${raw}'`);
}

/** AGENT_MIGRATION_LINK_MBPS, validated (at most 10 Tbit/s: more is bits for megabits); undefined when unset. */
export function migrationLinkMbpsSetting(env: Env, name = 'AGENT_MIGRATION_LINK_MBPS'): number | undefined {
  const mbps = optionalInt(env, name, 1);
  if (mbps !== undefined && mbps > MAX_LINK_MBPS) {
    throw new Error(`${name} must be megabits per second, at most ${MAX_LINK_MBPS}, got '${env[name]}'`);
  }
  return mbps;
}

function simProfileFromEnv(env: Env): Partial<SimHostProfile> {
  const linkMbps = migrationLinkMbpsSetting(env, 'AGENT_SIM_LINK_MBPS') ?? migrationLinkMbpsSetting(env);
  const profile: Partial<SimHostProfile> = {
    cpuModel: env.AGENT_CPU_MODEL || undefined,
    microcode: env.AGENT_MICROCODE || undefined,
    kernel: env.AGENT_KERNEL || undefined,
    qemuVersion: env.AGENT_QEMU_VERSION || undefined,
    linkBytesPerSec: linkMbps === undefined ? undefined : (linkMbps * 1e6) / 8,
  };
  return Object.fromEntries(Object.entries(profile).filter(([, v]) => v !== undefined));
}

/** Reads the agent's environment (see agent/main.ts for the list). Throws naming the first bad setting. */
export function agentOptionsFromEnv(env: Env): AgentOptions {
  const driver = env.AGENT_DRIVER ?? 'qemu';
  if (driver !== 'qemu' && driver !== 'sim')
    throw new Error(`AGENT_DRIVER must be qemu or sim, got '${driver}'`);
  requiredSetting(env, 'AGENT_PORT');
  const etcd = etcdSettings(env);
  const influx = influxSettings(env);
  return {
    name: requiredSetting(env, 'AGENT_NAME'),
    host: env.AGENT_HOST || '127.0.0.1',
    port: intSetting(env, 'AGENT_PORT', 0, 0),
    dir: path.resolve(requiredSetting(env, 'AGENT_DIR')),
    ...(env.AGENT_PEER_TOKEN ? { peerToken: env.AGENT_PEER_TOKEN } : {}),
    driver,
    sharedStorageDir: path.resolve(requiredSetting(env, 'SHARED_STORAGE_DIR')),
    guestImageDir: path.resolve(env.GUEST_IMAGE_DIR || defaultGuestImageDir(env)),
    tlsDir: path.resolve(env.AGENT_TLS_DIR || defaultTlsDir(env)),
    tlsCaKey: tlsCaKeyFromEnv(env),
    tlsDnTemplate: dnTemplateSetting(env),
    migrationAddress: env.MIGRATION_ADDRESS || null,
    migrationLinkMbps: migrationLinkMbpsSetting(env),
    networks: listSetting(env, 'AGENT_NETWORKS', DEFAULTS.agentNetworks),
    publicUrl: env.AGENT_URL || undefined,
    cpus: optionalInt(env, 'AGENT_CPUS', 1),
    memoryMb: optionalInt(env, 'AGENT_MEMORY_MB', 1),
    sim: simProfileFromEnv(env),
    liveness: {
      endpoints: etcd.endpoints,
      prefix: etcd.prefix,
      ttlSeconds: intSetting(env, 'HEALTH_TTL_S', DEFAULTS.healthTtlSeconds, 1),
    },
    fenceOnLeaseLoss: booleanSetting(env, 'FENCE_ON_LEASE_LOSS', true),
    metrics: {
      url: influx.url,
      database: influx.database,
      intervalSeconds: intSetting(env, 'METRICS_INTERVAL_S', DEFAULTS.metricsIntervalSeconds, 1),
    },
    registration: env.API_URL
      ? {
          apiUrl: env.API_URL,
          ...(env.AGENT_ENROLMENT_TOKEN ? { enrolmentToken: env.AGENT_ENROLMENT_TOKEN } : {}),
        }
      : null,
  };
}
