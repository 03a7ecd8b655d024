import { describe, expect, it } from 'vitest';
import { problemsOf } from './config-fixtures.ts';
import { influxSettings, influxWrite, influxWriteRequests } from '../../domain/config.ts';

const problems = (env: Record<string, string>) => problemsOf(influxSettings, env);

const basic = (user: string, password: string) =>
  `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;

describe('InfluxDB settings: 1.x with a login, or 2.x with token, org and bucket', () => {
  it('reads InfluxDB 1.x with basic auth, without a trailing slash', () => {
    expect(
      influxSettings({
        INFLUX_URL: 'https://influx.internal:8086/',
        INFLUX_DB: 'metrics',
        INFLUX_USERNAME: 'vmmig',
        INFLUX_PASSWORD: 'pw',
      }),
    ).toEqual({
      url: 'https://influx.internal:8086',
      database: 'metrics',
      api: 'influxql',
      token: '',
      org: '',
      bucket: 'metrics/autogen',
      username: 'vmmig',
      password: 'pw',
    });
  });

  it('reads InfluxDB 2.x and 1.8 with Flux', () => {
    expect(
      influxSettings({
        INFLUX_API: 'flux',
        INFLUX_TOKEN: 'tok==',
        INFLUX_ORG: 'ops',
        INFLUX_BUCKET: 'telegraf',
      }),
    ).toMatchObject({ api: 'flux', token: 'tok==', org: 'ops', bucket: 'telegraf' });
    // 1.8: user:password or no token, no org, bucket database/retention-policy.
    expect(influxSettings({ INFLUX_API: 'flux', INFLUX_TOKEN: 'u:p' })).toMatchObject({
      token: 'u:p',
      org: '',
      bucket: 'telegraf/autogen',
    });
    expect(influxSettings({ INFLUX_API: 'flux' }).token).toBe('');
  });

  it('names a bad URL, credentials in the URL and a bad API', () => {
    expect(problems({ INFLUX_URL: 'influx:8086' })).toEqual([
      "INFLUX_URL: 'influx:8086' is not an http(s) URL",
    ]);
    expect(problems({ INFLUX_URL: 'http://u:secret@influx:8086' })).toEqual([
      'INFLUX_URL must not hold credentials: use INFLUX_USERNAME/INFLUX_PASSWORD or INFLUX_TOKEN',
    ]);
    expect(problems({ INFLUX_API: 'sql' })).toEqual(["INFLUX_API must be one of influxql, flux, got 'sql'"]);
  });

  it("refuses the other API's credentials and half a login", () => {
    expect(problems({ INFLUX_TOKEN: 't', INFLUX_ORG: 'o', INFLUX_BUCKET: 'b' })).toEqual([
      'INFLUX_TOKEN is for INFLUX_API=flux; InfluxDB 1.x with INFLUX_API=influxql logs in with INFLUX_USERNAME/INFLUX_PASSWORD',
      'INFLUX_ORG is for INFLUX_API=flux; InfluxDB 1.x with INFLUX_API=influxql logs in with INFLUX_USERNAME/INFLUX_PASSWORD',
      'INFLUX_BUCKET is for INFLUX_API=flux; InfluxDB 1.x with INFLUX_API=influxql logs in with INFLUX_USERNAME/INFLUX_PASSWORD',
    ]);
    expect(problems({ INFLUX_API: 'flux', INFLUX_USERNAME: 'u', INFLUX_PASSWORD: 'p' })).toEqual([
      'INFLUX_USERNAME is for INFLUX_API=influxql; with flux, InfluxDB 1.8 takes INFLUX_TOKEN=user:password',
      'INFLUX_PASSWORD is for INFLUX_API=influxql; with flux, InfluxDB 1.8 takes INFLUX_TOKEN=user:password',
    ]);
    expect(problems({ INFLUX_USERNAME: 'u' })).toEqual([
      'INFLUX_USERNAME and INFLUX_PASSWORD go together (InfluxDB 1.x basic auth): INFLUX_USERNAME is set without INFLUX_PASSWORD',
    ]);
  });

  it('asks a 2.x server (an org) for its token and bucket too', () => {
    expect(problems({ INFLUX_API: 'flux', INFLUX_ORG: 'ops' })).toEqual([
      'INFLUX_TOKEN is required with INFLUX_ORG (InfluxDB 2.x)',
      "INFLUX_BUCKET is required with INFLUX_ORG (InfluxDB 2.x; database/autogen is 1.8's name)",
    ]);
    // Without an org it is 1.8, whatever the token looks like.
    expect(problems({ INFLUX_API: 'flux', INFLUX_TOKEN: 'tok==' })).toEqual([]);
  });
});

describe("the agents' writes follow the same settings", () => {
  it('writes to 1.x /write, creating the database, with basic auth when given', () => {
    expect(influxWriteRequests(influxWrite(influxSettings({ INFLUX_DB: 'm' })))).toEqual({
      create: '/query?q=CREATE%20DATABASE%20%22m%22',
      write: '/write?db=m&precision=ns',
      headers: {},
    });
    const withLogin = influxWrite(influxSettings({ INFLUX_USERNAME: 'w', INFLUX_PASSWORD: 'p' }));
    expect(withLogin).toEqual({ api: 'influxql', database: 'telegraf', username: 'w', password: 'p' });
    expect(influxWriteRequests(withLogin).headers).toEqual({ authorization: basic('w', 'p') });
  });

  it('writes to /api/v2/write with the token, org and bucket under flux, creating nothing', () => {
    const v2 = influxWrite(
      influxSettings({
        INFLUX_API: 'flux',
        INFLUX_TOKEN: 'tok==',
        INFLUX_ORG: 'ops',
        INFLUX_BUCKET: 'tele/graf',
      }),
    );
    expect(v2).toEqual({ api: 'flux', bucket: 'tele/graf', org: 'ops', token: 'tok==' });
    expect(influxWriteRequests(v2)).toEqual({
      create: null,
      write: '/api/v2/write?bucket=tele%2Fgraf&precision=ns&org=ops',
      headers: { authorization: 'Token tok==' },
    });
    // 1.8 without auth: no org, no header.
    expect(influxWriteRequests(influxWrite(influxSettings({ INFLUX_API: 'flux' })))).toEqual({
      create: null,
      write: '/api/v2/write?bucket=telegraf%2Fautogen&precision=ns',
      headers: {},
    });
  });
});
