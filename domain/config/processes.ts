import {
  DEFAULT_HOST_DOWN_TIMINGS,
  MIN_FENCING_MARGIN_MS,
  type HostDownTimings,
} from '../host-down-timing.ts';
import { DEFAULT_RETENTION_DAYS, parseRetentionDays, type RetentionDays } from '../retention.ts';
import { readDatabase, type DatabaseSettings } from './database.ts';
import type { EnvReader } from './env-reader.ts';
import { readEtcd, type EtcdSettings } from './etcd.ts';
import { readInflux, type InfluxSettings } from './influx.ts';
import { readTemporal, type TemporalSettings } from './temporal.ts';

/**
 * What each control-plane process needs, read in one go at its start (the agent's is agent/settings.ts).
 * "Config" here is the deployment's environment; "settings" (domain/migration-config.ts) and "policies"
 * are what operators change through the API at run time.
 */
export interface ApiConfig {
  host: string;
  port: number;
  /** The bootstrap admin token. */
  apiToken: string;
  agentCredentialKey: string;
  database: DatabaseSettings;
  temporal: TemporalSettings;
  etcd: EtcdSettings;
  influx: InfluxSettings;
}

export interface WorkerConfig {
  agentCredentialKey: string;
  database: DatabaseSettings;
  temporal: TemporalSettings;
  etcd: EtcdSettings;
  influx: InfluxSettings;
  hostDown: HostDownTimings;
  /** Days of events and finished migrations kept, and the Temporal namespace's retention; null: off. */
  retentionDays: RetentionDays;
}

export interface MigrateConfig {
  database: DatabaseSettings;
}

export const API_DEFAULTS = { host: '127.0.0.1', port: 8080 } as const;

const CREDENTIAL_KEY_HINT = 'the key host credentials are derived with; the same on the API and every worker';

export function readApiConfig(r: EnvReader): ApiConfig {
  return {
    host: r.string('API_HOST', API_DEFAULTS.host).trim(),
    port: r.int('API_PORT', API_DEFAULTS.port, 1, 65535),
    apiToken: r.required('API_TOKEN', 'the bootstrap admin token'),
    agentCredentialKey: r.required('AGENT_CREDENTIAL_KEY', CREDENTIAL_KEY_HINT),
    database: readDatabase(r),
    temporal: readTemporal(r),
    etcd: readEtcd(r),
    influx: readInflux(r),
  };
}

export function readWorkerConfig(r: EnvReader): WorkerConfig {
  return {
    agentCredentialKey: r.required('AGENT_CREDENTIAL_KEY', CREDENTIAL_KEY_HINT),
    database: readDatabase(r),
    temporal: readTemporal(r),
    etcd: readEtcd(r),
    influx: readInflux(r),
    hostDown: readHostDownTimings(r),
    retentionDays: readRetentionDays(r),
  };
}

export function readMigrateConfig(r: EnvReader): MigrateConfig {
  return { database: readDatabase(r) };
}

/** The host-down run's wait after a host's key went, before its guests start elsewhere. */
export function readHostDownTimings(r: EnvReader): HostDownTimings {
  return {
    fencingMarginMs: r.int(
      'HOST_DOWN_FENCING_MARGIN_MS',
      DEFAULT_HOST_DOWN_TIMINGS.fencingMarginMs,
      MIN_FENCING_MARGIN_MS,
    ),
  };
}

/** RETENTION_DAYS (domain/retention.ts): the default when unset, null when 'off'. */
export function readRetentionDays(r: EnvReader): RetentionDays {
  const reading = parseRetentionDays(r.optional('RETENTION_DAYS'));
  if ('problem' in reading) {
    r.problem(reading.problem);
    return DEFAULT_RETENTION_DAYS;
  }
  return reading.days;
}
