import { describe, expect, it } from 'vitest';
import {
  dataDir,
  etcdSettings,
  hostHealthKey,
  hostHealthPrefix,
  influxSettings,
  intSetting,
  listSetting,
  requiredSetting,
  temporalSettings,
} from '../../domain/config.ts';

describe('config', () => {
  it('defaults the data dir to .data under the repo and honours DATA_DIR', () => {
    expect(dataDir({}, '/repo')).toBe('/repo/.data');
    expect(dataDir({ DATA_DIR: '/var/vmmig' }, '/repo')).toBe('/var/vmmig');
  });

  it('reads integers and names the setting when one is wrong', () => {
    expect(intSetting({}, 'API_PORT', 8080)).toBe(8080);
    expect(intSetting({ API_PORT: '9000' }, 'API_PORT', 8080)).toBe(9000);
    expect(() => intSetting({ API_PORT: 'abc' }, 'API_PORT', 8080, 1)).toThrow(
      "API_PORT must be an integer >= 1, got 'abc'",
    );
    expect(() => intSetting({ API_PORT: '0' }, 'API_PORT', 8080, 1)).toThrow('API_PORT');
  });

  it('splits lists and ignores blanks', () => {
    expect(listSetting({ X: ' a, b,,c ' }, 'X', [])).toEqual(['a', 'b', 'c']);
    expect(listSetting({}, 'X', ['d'])).toEqual(['d']);
  });

  it('names a missing required setting', () => {
    expect(() => requiredSetting({}, 'DATABASE_URL')).toThrow('DATABASE_URL is required');
    expect(requiredSetting({ DATABASE_URL: 'postgres://x' }, 'DATABASE_URL')).toBe('postgres://x');
  });

  it('builds the Cloudpods-style health key', () => {
    expect(hostHealthKey('vmmig', 'h1')).toBe('/vmmig/host/health/h1');
    expect(hostHealthKey('vmmig', 'h1').startsWith(hostHealthPrefix('vmmig'))).toBe(true);
  });

  it('has local defaults for every server', () => {
    expect(temporalSettings({})).toEqual({
      address: '127.0.0.1:7233',
      namespace: 'default',
      taskQueue: 'vm-migration',
      tls: null,
      apiKeyFile: null,
    });
    expect(etcdSettings({ ETCD_ENDPOINTS: 'http://a:1,http://b:2' }).endpoints).toEqual([
      'http://a:1',
      'http://b:2',
    ]);
    expect(influxSettings({}).database).toBe('telegraf');
  });
});

describe('influx settings for alert-rule reads', () => {
  it('defaults to InfluxQL on the telegraf database, with Flux settings derived from it', () => {
    expect(influxSettings({})).toEqual({
      url: 'http://127.0.0.1:8086',
      database: 'telegraf',
      api: 'influxql',
      token: '',
      org: '',
      bucket: 'telegraf/autogen',
    });
    expect(influxSettings({ INFLUX_DB: 'metrics', INFLUX_API: '' }).bucket).toBe('metrics/autogen');
  });

  it('reads the Flux settings, and the InfluxQL credentials', () => {
    expect(
      influxSettings({
        INFLUX_URL: 'http://influx:8086',
        INFLUX_API: 'flux',
        INFLUX_TOKEN: 'user:secret',
        INFLUX_ORG: 'ops',
        INFLUX_BUCKET: 'telegraf/two_weeks',
      }),
    ).toEqual({
      url: 'http://influx:8086',
      database: 'telegraf',
      api: 'flux',
      token: 'user:secret',
      org: 'ops',
      bucket: 'telegraf/two_weeks',
    });
    expect(influxSettings({ INFLUX_USERNAME: 'reader', INFLUX_PASSWORD: 'pw' })).toMatchObject({
      api: 'influxql',
      username: 'reader',
      password: 'pw',
    });
  });

  it('names INFLUX_API and the allowed values when it is wrong', () => {
    expect(() => influxSettings({ INFLUX_API: 'sql' })).toThrow(
      "INFLUX_API must be one of influxql, flux, got 'sql'",
    );
  });
});
