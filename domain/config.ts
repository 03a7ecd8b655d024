import path from 'node:path';
import {
  DEFAULT_HOST_DOWN_TIMINGS,
  MIN_FENCING_MARGIN_MS,
  type HostDownTimings,
} from './host-down-timing.ts';

/**
 * Every setting the processes read, resolved from an environment in one place so that the dev
 * launcher, the tests and production agree on names and defaults. Pure: callers pass process.env.
 */
export type Env = Record<string, string | undefined>;

export const DEFAULTS = {
  apiHost: '127.0.0.1',
  apiPort: 8080,
  temporalAddress: '127.0.0.1:7233',
  temporalNamespace: 'default',
  taskQueue: 'vm-migration',
  etcdPrefix: 'vmmig',
  healthTtlSeconds: 10,
  metricsIntervalSeconds: 10,
  influxDatabase: 'telegraf',
  agentNetworks: ['default'],
} as const;

export function dataDir(env: Env, repoRoot: string): string {
  return path.resolve(env.DATA_DIR ?? path.join(repoRoot, '.data'));
}

export function intSetting(env: Env, name: string, fallback: number, min = 0): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < min) {
    throw new Error(`${name} must be an integer >= ${min}, got '${raw}'`);
  }
  return value;
}

export function listSetting(env: Env, name: string, fallback: readonly string[]): string[] {
  const raw = env[name];
  if (raw === undefined || raw.trim() === '') return [...fallback];
  return raw
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
}

export function requiredSetting(env: Env, name: string): string {
  const raw = env[name];
  if (raw === undefined || raw === '') throw new Error(`${name} is required but not set`);
  return raw;
}

export interface TemporalSettings {
  address: string;
  namespace: string;
  taskQueue: string;
  /** null: plain gRPC (the dev stack on loopback). */
  tls: TemporalTlsSettings | null;
  /** A file holding an API key sent with every call (Temporal Cloud); null: none. */
  apiKeyFile: string | null;
}

/** TLS to a production Temporal cluster; the files are PEM. */
export interface TemporalTlsSettings {
  /** The CA that signed the server's certificate; null: the system's roots. */
  caFile: string | null;
  /** mTLS: this client's certificate and key, both or neither. */
  clientCertFile: string | null;
  clientKeyFile: string | null;
  /** Overrides the name checked in the server's certificate (SNI); null: the address's host. */
  serverName: string | null;
}

const TRUE_WORDS = ['1', 'true', 'yes', 'on'];
const FALSE_WORDS = ['0', 'false', 'no', 'off'];

export function temporalSettings(env: Env): TemporalSettings {
  return {
    address: env.TEMPORAL_ADDRESS ?? DEFAULTS.temporalAddress,
    namespace: env.TEMPORAL_NAMESPACE ?? DEFAULTS.temporalNamespace,
    taskQueue: env.TEMPORAL_TASK_QUEUE ?? DEFAULTS.taskQueue,
    tls: temporalTlsSettings(env),
    apiKeyFile: env.TEMPORAL_API_KEY_FILE || null,
  };
}

/**
 * TLS is on when TEMPORAL_TLS says so or when any of its files is named (a CA or a client pair means a TLS
 * server); TEMPORAL_TLS=false with files named is a contradiction and refused.
 */
function temporalTlsSettings(env: Env): TemporalTlsSettings | null {
  const file = (name: string) => env[name] || null;
  const settings: TemporalTlsSettings = {
    caFile: file('TEMPORAL_TLS_CA'),
    clientCertFile: file('TEMPORAL_TLS_CERT'),
    clientKeyFile: file('TEMPORAL_TLS_KEY'),
    serverName: file('TEMPORAL_TLS_SERVER_NAME'),
  };
  const named = Object.values(settings).some((v) => v !== null);
  const flag = (env.TEMPORAL_TLS ?? '').trim().toLowerCase();
  if (flag !== '' && !TRUE_WORDS.includes(flag) && !FALSE_WORDS.includes(flag)) {
    throw new Error(
      `TEMPORAL_TLS: expected one of ${[...TRUE_WORDS, ...FALSE_WORDS].join(', ')}, got '${flag}'`,
    );
  }
  if (FALSE_WORDS.includes(flag)) {
    if (named) throw new Error('TEMPORAL_TLS is off but TEMPORAL_TLS_CA/CERT/KEY/SERVER_NAME are set');
    return null;
  }
  if ((settings.clientCertFile === null) !== (settings.clientKeyFile === null)) {
    throw new Error('TEMPORAL_TLS_CERT and TEMPORAL_TLS_KEY go together (mTLS): set both or neither');
  }
  return TRUE_WORDS.includes(flag) || named ? settings : null;
}

export interface EtcdSettings {
  endpoints: string[];
  prefix: string;
}

export function etcdSettings(env: Env): EtcdSettings {
  return {
    endpoints: listSetting(env, 'ETCD_ENDPOINTS', ['http://127.0.0.1:2379']),
    prefix: env.ETCD_PREFIX ?? DEFAULTS.etcdPrefix,
  };
}

/** The lease-backed liveness key of a host, as in the Cloudpods seed: /<prefix>/host/health/<host_id>. */
export function hostHealthKey(prefix: string, hostId: string): string {
  return `/${prefix}/host/health/${hostId}`;
}

export function hostHealthPrefix(prefix: string): string {
  return `/${prefix}/host/health/`;
}

/** The host watch's cluster-wide "processed up to" etcd revision, beside (not under) the health keys. */
export function hostWatchRevisionKey(prefix: string): string {
  return `/${prefix}/host/watch-revision`;
}

export const influxApis = ['influxql', 'flux'] as const;
export type InfluxApi = (typeof influxApis)[number];

export interface InfluxSettings {
  url: string;
  database: string;
  /** How alert rules read metrics: InfluxQL on /query (1.x) or Flux on /api/v2/query (1.8+, 2.x). */
  api: InfluxApi;
  /** Flux: API token (2.x), or `user:password` for the 1.8 compatibility API; '' for none. */
  token: string;
  /** Flux: organisation ('' for 1.8, which ignores it). */
  org: string;
  /** Flux: bucket, by default the database's default retention policy as 1.8 names it. */
  bucket: string;
  /** InfluxQL: basic-auth credentials, when the server has auth enabled. */
  username?: string;
  password?: string;
}

export function influxSettings(env: Env): InfluxSettings {
  const database = env.INFLUX_DB ?? DEFAULTS.influxDatabase;
  const api = env.INFLUX_API === undefined || env.INFLUX_API === '' ? 'influxql' : env.INFLUX_API;
  if (!(influxApis as readonly string[]).includes(api)) {
    throw new Error(`INFLUX_API must be one of ${influxApis.join(', ')}, got '${api}'`);
  }
  return {
    url: env.INFLUX_URL ?? 'http://127.0.0.1:8086',
    database,
    api: api as InfluxApi,
    token: env.INFLUX_TOKEN ?? '',
    org: env.INFLUX_ORG ?? '',
    bucket: env.INFLUX_BUCKET || `${database}/autogen`,
    ...(env.INFLUX_USERNAME ? { username: env.INFLUX_USERNAME } : {}),
    ...(env.INFLUX_PASSWORD ? { password: env.INFLUX_PASSWORD } : {}),
  };
}

/** The host-down run's wait after a host's key went, before its guests start elsewhere. */
export function hostDownTimings(env: Env): HostDownTimings {
  return {
    fencingMarginMs: intSetting(
      env,
      'HOST_DOWN_FENCING_MARGIN_MS',
      DEFAULT_HOST_DOWN_TIMINGS.fencingMarginMs,
      MIN_FENCING_MARGIN_MS,
    ),
  };
}
