import { describe, expect, it } from 'vitest';
import { readAgentOptions } from '../../agent/settings.ts';
import {
  ConfigError,
  EnvReader,
  hostDownTimings,
  readApiConfig,
  readMigrateConfig,
  readWorkerConfig,
  temporalSettings,
  type Env,
} from '../../domain/config.ts';

function problemsOf(read: (r: EnvReader) => unknown, env: Env): string[] {
  const r = new EnvReader(env);
  read(r);
  return r.problems;
}

const CONTROL_PLANE = {
  DATABASE_URL: 'postgres://vmmig:pw@db:5432/vmmig',
  API_TOKEN: 'admin-token',
  AGENT_CREDENTIAL_KEY: 'credential-key',
};

describe('Temporal settings', () => {
  it('takes host:port, a namespace and a task queue', () => {
    expect(
      temporalSettings({
        TEMPORAL_ADDRESS: 'ns.acct.tmprl.cloud:7233',
        TEMPORAL_NAMESPACE: 'ns.acct',
        TEMPORAL_TASK_QUEUE: 'vm-migration-prod',
        TEMPORAL_API_KEY_FILE: '/etc/vmmig/temporal-api-key',
      }),
    ).toEqual({
      address: 'ns.acct.tmprl.cloud:7233',
      namespace: 'ns.acct',
      taskQueue: 'vm-migration-prod',
      tls: null,
      apiKeyFile: '/etc/vmmig/temporal-api-key',
    });
    expect(temporalSettings({ TEMPORAL_ADDRESS: '[::1]:7233' }).address).toBe('[::1]:7233');
  });

  it('names a URL where host:port belongs, an API key with TLS off, and every TLS problem together', () => {
    expect(
      problemsOf((r) => readApiConfig(r), { ...CONTROL_PLANE, TEMPORAL_ADDRESS: 'http://t:7233' }),
    ).toEqual(["TEMPORAL_ADDRESS must be host:port (no scheme), got 'http://t:7233'"]);
    expect(() => temporalSettings({ TEMPORAL_ADDRESS: 'temporal' })).toThrow(
      /TEMPORAL_ADDRESS must be host:port/,
    );
    expect(() => temporalSettings({ TEMPORAL_TLS: 'off', TEMPORAL_API_KEY_FILE: '/k' })).toThrow(
      'TEMPORAL_TLS is off but TEMPORAL_API_KEY_FILE is set: an API key goes over TLS only',
    );
    let error: ConfigError | undefined;
    try {
      temporalSettings({ TEMPORAL_TLS: 'maybe', TEMPORAL_TLS_KEY: '/k.pem' });
    } catch (e) {
      error = e as ConfigError;
    }
    expect(error?.problems).toEqual([
      "TEMPORAL_TLS: expected one of 1, true, yes, on, 0, false, no, off, got 'maybe'",
      'TEMPORAL_TLS_CERT and TEMPORAL_TLS_KEY go together (the mTLS client pair): TEMPORAL_TLS_KEY is set without TEMPORAL_TLS_CERT',
    ]);
  });
});

describe('each process reads everything it needs and names every problem at once', () => {
  it('the API: defaults for everything but the database and its two secrets', () => {
    const r = new EnvReader(CONTROL_PLANE);
    const config = readApiConfig(r);
    expect(r.problems).toEqual([]);
    expect(config).toMatchObject({
      host: '127.0.0.1',
      port: 8080,
      apiToken: 'admin-token',
      agentCredentialKey: 'credential-key',
      database: { sslMode: 'disable' },
      temporal: { address: '127.0.0.1:7233', namespace: 'default', taskQueue: 'vm-migration' },
      etcd: { endpoints: ['http://127.0.0.1:2379'], prefix: 'vmmig' },
      influx: { url: 'http://127.0.0.1:8086', api: 'influxql' },
    });
    expect(
      readApiConfig(new EnvReader({ ...CONTROL_PLANE, API_HOST: '0.0.0.0', API_PORT: '9000' })),
    ).toMatchObject({ host: '0.0.0.0', port: 9000 });
  });

  it('the API with nothing set, or everything wrong', () => {
    expect(problemsOf(readApiConfig, {})).toEqual([
      'API_TOKEN is required (the bootstrap admin token)',
      'AGENT_CREDENTIAL_KEY is required (the key host credentials are derived with; the same on the API and every worker)',
      'DATABASE_URL is required (postgres://user:password@host:5432/database?sslmode=verify-full)',
    ]);
    expect(
      problemsOf(readApiConfig, {
        ...CONTROL_PLANE,
        API_PORT: '80000',
        DATABASE_URL: 'postgres://db/x?sslmode=prefer',
        TEMPORAL_ADDRESS: 'temporal',
        ETCD_ENDPOINTS: 'htp://x',
        INFLUX_API: 'sql',
      }),
    ).toEqual([
      "API_PORT must be an integer from 1 to 65535, got '80000'",
      "DATABASE_URL: sslmode must be one of disable, require, verify-ca, verify-full, got 'prefer' (node-postgres cannot fall back between TLS and plain)",
      "TEMPORAL_ADDRESS must be host:port (no scheme), got 'temporal'",
      "ETCD_ENDPOINTS: 'htp://x' is not an http(s) URL",
      "INFLUX_API must be one of influxql, flux, got 'sql'",
    ]);
  });

  it('the worker: no API token, but the host-down margin', () => {
    const r = new EnvReader({ ...CONTROL_PLANE, API_TOKEN: undefined, HOST_DOWN_FENCING_MARGIN_MS: '5000' });
    expect(readWorkerConfig(r)).toMatchObject({
      agentCredentialKey: 'credential-key',
      hostDown: { fencingMarginMs: 5000 },
    });
    expect(r.problems).toEqual([]);
    expect(problemsOf(readWorkerConfig, { HOST_DOWN_FENCING_MARGIN_MS: '1' })).toEqual([
      'AGENT_CREDENTIAL_KEY is required (the key host credentials are derived with; the same on the API and every worker)',
      'DATABASE_URL is required (postgres://user:password@host:5432/database?sslmode=verify-full)',
      expect.stringMatching(/^HOST_DOWN_FENCING_MARGIN_MS must be an integer >= \d+, got '1'$/),
    ]);
    expect(hostDownTimings({}).fencingMarginMs).toBeGreaterThan(0);
  });

  it('the schema migration: the database alone', () => {
    expect(problemsOf(readMigrateConfig, {})).toEqual([
      'DATABASE_URL is required (postgres://user:password@host:5432/database?sslmode=verify-full)',
    ]);
    expect(problemsOf(readMigrateConfig, { DATABASE_URL: 'postgres://db/x' })).toEqual([]);
  });

  it('the agent: every missing and bad variable, not the first', () => {
    expect(problemsOf(readAgentOptions, {})).toEqual([
      'AGENT_PORT is required (0 picks a free port)',
      "AGENT_DIR is required (this host's state: host id, credential, guests)",
      'SHARED_STORAGE_DIR is required (where shared disks live, the same path on every host)',
      "AGENT_NAME is required (this host's name)",
    ]);
    expect(
      problemsOf(readAgentOptions, {
        AGENT_NAME: 'h',
        AGENT_PORT: 'x',
        AGENT_DIR: '/a',
        SHARED_STORAGE_DIR: '/s',
        AGENT_DRIVER: 'xen',
        ETCD_ENDPOINTS: 'https://e:2379',
        ETCD_TLS_CERT: '/c.pem',
        INFLUX_API: 'flux',
        INFLUX_USERNAME: 'u',
        INFLUX_PASSWORD: 'p',
        API_URL: 'api:8080',
        AGENT_URL: 'http://',
        AGENT_TLS_DN: 'CN=fixed',
        AGENT_MIGRATION_LINK_MBPS: 'fast',
        AGENT_CPUS: '0',
        HEALTH_TTL_S: '0',
        FENCE_ON_LEASE_LOSS: 'nope',
        METRICS_INTERVAL_S: 'often',
      }),
    ).toEqual([
      "AGENT_DRIVER must be one of qemu, sim, got 'xen'",
      "AGENT_PORT must be an integer from 0 to 65535, got 'x'",
      'ETCD_TLS_CERT and ETCD_TLS_KEY go together (the client certificate pair): ETCD_TLS_CERT is set without ETCD_TLS_KEY',
      'ETCD_TLS_CA is required with ETCD_TLS_CERT/KEY (the CA of the etcd cluster)',
      'INFLUX_USERNAME is for INFLUX_API=influxql; with flux, InfluxDB 1.8 takes INFLUX_TOKEN=user:password',
      'INFLUX_PASSWORD is for INFLUX_API=influxql; with flux, InfluxDB 1.8 takes INFLUX_TOKEN=user:password',
      "API_URL: 'api:8080' is not an http(s) URL",
      "AGENT_URL: 'http://' is not an http(s) URL",
      "AGENT_MIGRATION_LINK_MBPS must be an integer >= 1, got 'fast'",
      expect.stringMatching(/^AGENT_TLS_DN: /),
      "AGENT_CPUS must be an integer >= 1, got '0'",
      "HEALTH_TTL_S must be an integer >= 1, got '0'",
      "FENCE_ON_LEASE_LOSS must be true or false, got 'nope'",
      "METRICS_INTERVAL_S must be an integer >= 1, got 'often'",
    ]);
    expect(
      problemsOf(readAgentOptions, {
        AGENT_NAME: 'h',
        AGENT_PORT: '0',
        AGENT_DIR: '/a',
        SHARED_STORAGE_DIR: '/s',
        AGENT_ENROLMENT_TOKEN: 'vme_x',
      }),
    ).toEqual(['AGENT_ENROLMENT_TOKEN is set without API_URL: enrolment goes through the API']);
  });

  it("the agent carries etcd's TLS and auth and the metrics' credentials to its clients", () => {
    const r = new EnvReader({
      AGENT_NAME: 'h',
      AGENT_PORT: '0',
      AGENT_DIR: '/a',
      SHARED_STORAGE_DIR: '/s',
      ETCD_ENDPOINTS: 'https://e:2379',
      ETCD_TLS_CA: '/ca.pem',
      ETCD_USERNAME: 'agent',
      ETCD_PASSWORD: 'pw',
      INFLUX_USERNAME: 'writer',
      INFLUX_PASSWORD: 'pw2',
    });
    const options = readAgentOptions(r);
    expect(r.problems).toEqual([]);
    expect(r.files).toEqual([{ variable: 'ETCD_TLS_CA', path: '/ca.pem' }]);
    expect(options.liveness).toEqual({
      endpoints: ['https://e:2379'],
      prefix: 'vmmig',
      tls: { caFile: '/ca.pem', clientCertFile: null, clientKeyFile: null },
      auth: { username: 'agent', password: 'pw' },
      ttlSeconds: 10,
    });
    expect(options.metrics?.write).toEqual({
      api: 'influxql',
      database: 'telegraf',
      username: 'writer',
      password: 'pw2',
    });
  });
});
