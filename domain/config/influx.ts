import type { EnvReader } from './env-reader.ts';

/**
 * InfluxDB, where the agents write host and guest metrics (telegraf schema) and the alert cycles read them.
 * Two ways to talk to it, chosen by INFLUX_API and used by both sides:
 *   influxql (default): InfluxDB 1.x, /query and /write on database INFLUX_DB; INFLUX_USERNAME and
 *                       INFLUX_PASSWORD
 *                       when it has auth enabled.
 *   flux:               InfluxDB 2.x (INFLUX_TOKEN, INFLUX_ORG, INFLUX_BUCKET) or 1.8 with Flux enabled
 *                       (INFLUX_TOKEN=user:password or none, bucket database/retention-policy).
 */
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

export const INFLUX_DEFAULTS = { url: 'http://127.0.0.1:8086', database: 'telegraf' } as const;

const FLUX_ONLY = ['INFLUX_TOKEN', 'INFLUX_ORG', 'INFLUX_BUCKET'];
const INFLUXQL_ONLY = ['INFLUX_USERNAME', 'INFLUX_PASSWORD'];

export function readInflux(r: EnvReader): InfluxSettings {
  const url = r.url('INFLUX_URL', INFLUX_DEFAULTS.url, ['http:', 'https:']).replace(/\/+$/, '');
  if (/^https?:\/\/[^/]*@/.test(url)) {
    r.problem('INFLUX_URL must not hold credentials: use INFLUX_USERNAME/INFLUX_PASSWORD or INFLUX_TOKEN');
  }
  const database = r.string('INFLUX_DB', INFLUX_DEFAULTS.database).trim();
  const api = r.oneOf('INFLUX_API', influxApis, 'influxql');
  const token = r.optional('INFLUX_TOKEN') ?? '';
  const org = r.optional('INFLUX_ORG')?.trim() ?? '';
  const bucket = r.optional('INFLUX_BUCKET')?.trim() ?? '';
  r.pair('INFLUX_USERNAME', 'INFLUX_PASSWORD', 'InfluxDB 1.x basic auth');
  if (api === 'influxql') {
    for (const name of FLUX_ONLY.filter((n) => r.isSet(n))) {
      r.problem(
        `${name} is for INFLUX_API=flux; InfluxDB 1.x with INFLUX_API=influxql logs in with INFLUX_USERNAME/INFLUX_PASSWORD`,
      );
    }
  } else {
    for (const name of INFLUXQL_ONLY.filter((n) => r.isSet(n))) {
      r.problem(
        `${name} is for INFLUX_API=influxql; with flux, InfluxDB 1.8 takes INFLUX_TOKEN=user:password`,
      );
    }
    // INFLUX_ORG means InfluxDB 2.x, which needs all three; without it, 1.8 (token user:password or none).
    if (org !== '') {
      if (token === '') r.problem('INFLUX_TOKEN is required with INFLUX_ORG (InfluxDB 2.x)');
      if (bucket === '')
        r.problem("INFLUX_BUCKET is required with INFLUX_ORG (InfluxDB 2.x; database/autogen is 1.8's name)");
    }
  }
  const username = r.optional('INFLUX_USERNAME');
  const password = r.optional('INFLUX_PASSWORD');
  return {
    url,
    database,
    api,
    token,
    org,
    bucket: bucket || `${database}/autogen`,
    ...(username !== undefined && password !== undefined ? { username, password } : {}),
  };
}

/** How an agent writes its points: the 1.x /write endpoint, or /api/v2/write (2.x, and 1.8). */
export type InfluxWrite =
  | { api: 'influxql'; database: string; username?: string; password?: string }
  | { api: 'flux'; bucket: string; org: string; token: string };

export function influxWrite(settings: InfluxSettings): InfluxWrite {
  if (settings.api === 'flux') {
    return { api: 'flux', bucket: settings.bucket, org: settings.org, token: settings.token };
  }
  return {
    api: 'influxql',
    database: settings.database,
    ...(settings.username !== undefined
      ? { username: settings.username, password: settings.password ?? '' }
      : {}),
  };
}

export interface InfluxWriteRequests {
  /** Path and query that creates the database first (1.x, idempotent); null: the operator makes the bucket. */
  create: string | null;
  /** Path and query the line protocol is POSTed to, nanosecond precision. */
  write: string;
  headers: Record<string, string>;
}

export function influxWriteRequests(target: InfluxWrite): InfluxWriteRequests {
  if (target.api === 'flux') {
    const query = new URLSearchParams({ bucket: target.bucket, precision: 'ns' });
    if (target.org !== '') query.set('org', target.org);
    return {
      create: null,
      write: `/api/v2/write?${query}`,
      headers: target.token === '' ? {} : { authorization: `Token ${target.token}` },
    };
  }
  const headers: Record<string, string> =
    target.username === undefined
      ? {}
      : {
          authorization: `Basic ${Buffer.from(`${target.username}:${target.password ?? ''}`).toString('base64')}`,
        };
  return {
    create: `/query?q=${encodeURIComponent(`CREATE DATABASE "${target.database}"`)}`,
    write: `/write?db=${encodeURIComponent(target.database)}&precision=ns`,
    headers,
  };
}
