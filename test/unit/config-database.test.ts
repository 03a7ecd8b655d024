import { describe, expect, it } from 'vitest';
import { problemsOf, readFixtureFile } from './config-fixtures.ts';
import {
  ConfigError,
  databaseSettings,
  databaseSettingsFromUrl,
  postgresSsl,
  type DatabaseSettings,
} from '../../domain/config.ts';

const URL_ = 'postgres://vmmig:pw@db.internal:5432/vmmig';

const problems = (env: Record<string, string>) => problemsOf(databaseSettings, env);

const read = readFixtureFile;
const settings = (env: Record<string, string>): DatabaseSettings =>
  databaseSettings({ DATABASE_URL: URL_, ...env });

describe('DATABASE_URL and its TLS', () => {
  it('is required, and must be a postgres URL; a bad one is not echoed (it may hold a password)', () => {
    expect(problems({})).toEqual([
      'DATABASE_URL is required (postgres://user:password@host:5432/database?sslmode=verify-full)',
    ]);
    expect(problems({ DATABASE_URL: 'mysql://root:hunter2@x/db' })).toEqual([
      'DATABASE_URL is not a postgres:// or postgresql:// URL',
    ]);
    expect(problems({ DATABASE_URL: 'not a url' })).toHaveLength(1);
  });

  it('is plain without sslmode, and passes the URL on without the TLS parameters', () => {
    expect(databaseSettings({ DATABASE_URL: URL_ })).toEqual({
      url: URL_,
      sslMode: 'disable',
      caFile: null,
      clientCertFile: null,
      clientKeyFile: null,
    });
    const s = databaseSettings({
      DATABASE_URL: `postgresql://u:p%40ss@db:5432/vmmig?sslmode=verify-full&application_name=api`,
      DATABASE_TLS_CA: '/ca.pem',
    });
    expect(s.sslMode).toBe('verify-full');
    expect(s.url).toBe('postgresql://u:p%40ss@db:5432/vmmig?application_name=api');
    expect(s.caFile).toBe('/ca.pem');
  });

  it('reads each libpq mode node-postgres can honour', () => {
    for (const mode of ['disable', 'require', 'verify-ca', 'verify-full'] as const) {
      const env = {
        DATABASE_URL: `${URL_}?sslmode=${mode}`,
        DATABASE_TLS_CA: mode === 'disable' ? '' : '/ca.pem',
      };
      expect(databaseSettings(env).sslMode, mode).toBe(mode);
    }
  });

  it('refuses modes it cannot honour, URL TLS files and contradictions, all at once', () => {
    expect(problems({ DATABASE_URL: `${URL_}?sslmode=prefer` })).toEqual([
      "DATABASE_URL: sslmode must be one of disable, require, verify-ca, verify-full, got 'prefer' (node-postgres cannot fall back between TLS and plain)",
    ]);
    expect(problems({ DATABASE_URL: `${URL_}?sslmode=strict` })).toEqual([
      "DATABASE_URL: sslmode must be one of disable, require, verify-ca, verify-full, got 'strict'",
    ]);
    expect(
      problems({
        DATABASE_URL: `${URL_}?sslmode=require&sslrootcert=/ca&sslcert=/c&sslkey=/k&ssl=true&uselibpqcompat=true`,
      }),
    ).toEqual([
      'DATABASE_URL: sslrootcert is not read here; name the file in DATABASE_TLS_CA',
      'DATABASE_URL: sslcert is not read here; name the file in DATABASE_TLS_CERT',
      'DATABASE_URL: sslkey is not read here; name the file in DATABASE_TLS_KEY',
      'DATABASE_URL: ssl is not read here; use sslmode',
      'DATABASE_URL: uselibpqcompat is not read here; use sslmode',
    ]);
    expect(problems({ DATABASE_URL: URL_, DATABASE_TLS_CA: '/ca.pem', DATABASE_TLS_CERT: '/c.pem' })).toEqual(
      [
        'DATABASE_TLS_CERT and DATABASE_TLS_KEY go together (the client certificate pair): DATABASE_TLS_CERT is set without DATABASE_TLS_KEY',
        'DATABASE_TLS_CA/CERT/KEY are set but DATABASE_URL has no sslmode (or sslmode=disable): add sslmode=verify-full',
      ],
    );
    expect(problems({ DATABASE_URL: `${URL_}?sslmode=verify-ca` })).toEqual([
      'DATABASE_TLS_CA is required with sslmode=verify-ca (any certificate of a public CA would pass)',
    ]);
  });

  it('reads a bare URL the same way (tests and tools), throwing its problems', () => {
    expect(databaseSettingsFromUrl(`${URL_}?sslmode=require`).sslMode).toBe('require');
    expect(() => databaseSettingsFromUrl('http://x')).toThrow(ConfigError);
  });
});

describe("postgresSsl: node-postgres's ssl with libpq's meaning", () => {
  it('is off for disable', () => {
    expect(postgresSsl(settings({}), read)).toBe(false);
  });

  it('encrypts without checking for require, and checks the chain once a CA is named (as libpq does)', () => {
    expect(postgresSsl(settings({ DATABASE_URL: `${URL_}?sslmode=require` }), read)).toEqual({
      rejectUnauthorized: false,
    });
    const withCa = postgresSsl(
      settings({ DATABASE_URL: `${URL_}?sslmode=require`, DATABASE_TLS_CA: '/ca.pem' }),
      read,
    );
    expect(withCa).toMatchObject({ ca: 'CA', rejectUnauthorized: true });
    expect(withCa && withCa.checkServerIdentity?.('other', {} as never)).toBeUndefined();
  });

  it('checks the chain but not the name for verify-ca', () => {
    const ssl = postgresSsl(
      settings({ DATABASE_URL: `${URL_}?sslmode=verify-ca`, DATABASE_TLS_CA: '/ca.pem' }),
      read,
    );
    expect(ssl).toMatchObject({ ca: 'CA', rejectUnauthorized: true });
    expect(ssl && typeof ssl.checkServerIdentity).toBe('function');
  });

  it('checks chain and name for verify-full, with the system roots or the CA, and sends a client pair', () => {
    expect(postgresSsl(settings({ DATABASE_URL: `${URL_}?sslmode=verify-full` }), read)).toEqual({
      rejectUnauthorized: true,
    });
    expect(
      postgresSsl(
        settings({
          DATABASE_URL: `${URL_}?sslmode=verify-full`,
          DATABASE_TLS_CA: '/ca.pem',
          DATABASE_TLS_CERT: '/c.pem',
          DATABASE_TLS_KEY: '/k.pem',
        }),
        read,
      ),
    ).toEqual({ ca: 'CA', cert: 'CERT', key: 'KEY', rejectUnauthorized: true });
  });

  it('names the variable of every file it cannot read', () => {
    const s = settings({
      DATABASE_URL: `${URL_}?sslmode=verify-full`,
      DATABASE_TLS_CA: '/missing-ca.pem',
      DATABASE_TLS_CERT: '/c.pem',
      DATABASE_TLS_KEY: '/missing-key.pem',
    });
    expect(() => postgresSsl(s, read)).toThrow(
      /^DATABASE_TLS_CA: cannot read \/missing-ca.pem: .*\nDATABASE_TLS_KEY: cannot read \/missing-key.pem/,
    );
  });
});
