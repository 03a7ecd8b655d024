import path from 'node:path';
import { readDatabase, type DatabaseSettings } from './config/database.ts';
import { EnvReader, type Env } from './config/env-reader.ts';
import { ETCD_DEFAULTS, readEtcd, type EtcdSettings } from './config/etcd.ts';
import { INFLUX_DEFAULTS, readInflux, type InfluxSettings } from './config/influx.ts';
import { API_DEFAULTS, readHostDownTimings } from './config/processes.ts';
import { readTemporal, TEMPORAL_DEFAULTS, type TemporalSettings } from './config/temporal.ts';
import type { HostDownTimings } from './host-down-timing.ts';

/**
 * Every setting the processes read from their environment ("config": the deployment's, fixed at start; the
 * API's settings and policies change at run time), in one place so that the dev launcher, the tests and
 * production agree on names and defaults. Pure: callers pass process.env. An entry point reads its whole
 * configuration once: configOrExit (./config/startup.ts, the one impure step) with readApiConfig,
 * readWorkerConfig, readMigrateConfig or the agent's readAgentOptions, and stops naming every bad variable.
 * The per-part functions below throw a ConfigError with every problem of their part, for launchers and tests.
 * docs/deployment.md lists every variable.
 */
export * from './config/database.ts';
export * from './config/env-reader.ts';
export * from './config/etcd.ts';
export * from './config/influx.ts';
export * from './config/processes.ts';
export * from './config/temporal.ts';

export const DEFAULTS = {
  apiHost: API_DEFAULTS.host,
  apiPort: API_DEFAULTS.port,
  temporalAddress: TEMPORAL_DEFAULTS.address,
  temporalNamespace: TEMPORAL_DEFAULTS.namespace,
  taskQueue: TEMPORAL_DEFAULTS.taskQueue,
  etcdPrefix: ETCD_DEFAULTS.prefix,
  healthTtlSeconds: 10,
  metricsIntervalSeconds: 10,
  influxDatabase: INFLUX_DEFAULTS.database,
  agentNetworks: ['default'],
} as const;

export function dataDir(env: Env, repoRoot: string): string {
  return path.resolve(env.DATA_DIR ?? path.join(repoRoot, '.data'));
}

/** One part, read alone: its value, or a ConfigError with every problem. */
function part<T>(read: (r: EnvReader) => T, env: Env): T {
  const r = new EnvReader(env);
  return r.result(read(r));
}

export const temporalSettings = (env: Env): TemporalSettings => part(readTemporal, env);
export const etcdSettings = (env: Env): EtcdSettings => part(readEtcd, env);
export const influxSettings = (env: Env): InfluxSettings => part(readInflux, env);
export const databaseSettings = (env: Env): DatabaseSettings => part(readDatabase, env);
export const hostDownTimings = (env: Env): HostDownTimings => part(readHostDownTimings, env);

export function intSetting(env: Env, name: string, fallback: number, min = 0): number {
  return part((r) => r.int(name, fallback, min), env);
}

export function listSetting(env: Env, name: string, fallback: readonly string[]): string[] {
  return part((r) => r.list(name, fallback), env);
}

export function requiredSetting(env: Env, name: string): string {
  return part((r) => r.required(name), env);
}
