import path from 'node:path';

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
}

export function temporalSettings(env: Env): TemporalSettings {
  return {
    address: env.TEMPORAL_ADDRESS ?? DEFAULTS.temporalAddress,
    namespace: env.TEMPORAL_NAMESPACE ?? DEFAULTS.temporalNamespace,
    taskQueue: env.TEMPORAL_TASK_QUEUE ?? DEFAULTS.taskQueue,
  };
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

export interface InfluxSettings {
  url: string;
  database: string;
}

export function influxSettings(env: Env): InfluxSettings {
  return {
    url: env.INFLUX_URL ?? 'http://127.0.0.1:8086',
    database: env.INFLUX_DB ?? DEFAULTS.influxDatabase,
  };
}
