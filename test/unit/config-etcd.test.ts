import { describe, expect, it } from 'vitest';
import { problemsOf, readFixtureFile } from './config-fixtures.ts';
import { etcdClientOptions, etcdSettings } from '../../domain/config.ts';

const problems = (env: Record<string, string>) => problemsOf(etcdSettings, env);

const read = readFixtureFile;

describe('etcd settings', () => {
  it('defaults to the local etcd, prefix vmmig, no TLS, no auth', () => {
    expect(etcdSettings({})).toEqual({
      endpoints: ['http://127.0.0.1:2379'],
      prefix: 'vmmig',
      tls: null,
      auth: null,
    });
  });

  it('reads a TLS cluster with client certificates and password auth', () => {
    expect(
      etcdSettings({
        ETCD_ENDPOINTS: 'https://etcd-1:2379, https://etcd-2:2379,https://[fd00::3]:2379',
        ETCD_PREFIX: 'prod-vmmig',
        ETCD_TLS_CA: '/ca.pem',
        ETCD_TLS_CERT: '/c.pem',
        ETCD_TLS_KEY: '/k.pem',
        ETCD_USERNAME: 'vmmig',
        ETCD_PASSWORD: 'secret',
      }),
    ).toEqual({
      endpoints: ['https://etcd-1:2379', 'https://etcd-2:2379', 'https://[fd00::3]:2379'],
      prefix: 'prod-vmmig',
      tls: { caFile: '/ca.pem', clientCertFile: '/c.pem', clientKeyFile: '/k.pem' },
      auth: { username: 'vmmig', password: 'secret' },
    });
    // https:// alone: the system's roots.
    expect(etcdSettings({ ETCD_ENDPOINTS: 'https://etcd:2379' }).tls).toBeNull();
  });

  it('names every bad endpoint, a mix of schemes and a bad prefix', () => {
    expect(
      problems({ ETCD_ENDPOINTS: 'htp://x, http://etcd-1, https://etcd-2:2379', ETCD_PREFIX: 'a/b' }),
    ).toEqual([
      "ETCD_ENDPOINTS: 'htp://x' is not an http(s) URL",
      "ETCD_ENDPOINTS: 'http://etcd-1' must be scheme://host:port",
      'ETCD_ENDPOINTS mixes http:// and https:// endpoints: one cluster speaks one of them',
      "ETCD_PREFIX must be letters, digits, '.', '_' or '-', got 'a/b'",
    ]);
    expect(problems({ ETCD_ENDPOINTS: ' , ' })).toEqual(['ETCD_ENDPOINTS lists no endpoint']);
  });

  it('refuses TLS files on http://, a client pair without the CA, half a pair, half a login', () => {
    expect(problems({ ETCD_TLS_CA: '/ca.pem' })).toEqual([
      'ETCD_TLS_CA/CERT/KEY are set but ETCD_ENDPOINTS are not https://',
    ]);
    expect(
      problems({ ETCD_ENDPOINTS: 'https://e:2379', ETCD_TLS_CERT: '/c.pem', ETCD_TLS_KEY: '/k.pem' }),
    ).toEqual(['ETCD_TLS_CA is required with ETCD_TLS_CERT/KEY (the CA of the etcd cluster)']);
    expect(
      problems({ ETCD_ENDPOINTS: 'https://e:2379', ETCD_TLS_CA: '/ca.pem', ETCD_TLS_KEY: '/k.pem' }),
    ).toEqual([
      'ETCD_TLS_CERT and ETCD_TLS_KEY go together (the client certificate pair): ETCD_TLS_KEY is set without ETCD_TLS_CERT',
    ]);
    expect(problems({ ETCD_PASSWORD: 'p' })).toEqual([
      'ETCD_USERNAME and ETCD_PASSWORD go together (etcd password auth): ETCD_PASSWORD is set without ETCD_USERNAME',
    ]);
  });
});

describe('etcdClientOptions: what every etcd3 client of the project is made with', () => {
  it('is the hosts alone for a plain cluster', () => {
    expect(etcdClientOptions(etcdSettings({}), read)).toEqual({
      hosts: ['http://127.0.0.1:2379'],
      dialTimeout: 3000,
    });
    // Settings built by hand (tests) without tls/auth.
    expect(etcdClientOptions({ endpoints: ['http://e:1'], prefix: 'p' }, read)).toEqual({
      hosts: ['http://e:1'],
      dialTimeout: 3000,
    });
  });

  it('passes the CA, the client pair and the login', () => {
    const settings = etcdSettings({
      ETCD_ENDPOINTS: 'https://e:2379',
      ETCD_TLS_CA: '/ca.pem',
      ETCD_TLS_CERT: '/c.pem',
      ETCD_TLS_KEY: '/k.pem',
      ETCD_USERNAME: 'u',
      ETCD_PASSWORD: 'p',
    });
    expect(etcdClientOptions(settings, read)).toEqual({
      hosts: ['https://e:2379'],
      dialTimeout: 3000,
      credentials: {
        rootCertificate: Buffer.from('CA'),
        certChain: Buffer.from('CERT'),
        privateKey: Buffer.from('KEY'),
      },
      auth: { username: 'u', password: 'p' },
    });
    const caOnly = etcdSettings({ ETCD_ENDPOINTS: 'https://e:2379', ETCD_TLS_CA: '/ca.pem' });
    expect(etcdClientOptions(caOnly, read).credentials).toEqual({ rootCertificate: Buffer.from('CA') });
  });

  it('names the variable of every file it cannot read', () => {
    const settings = etcdSettings({
      ETCD_ENDPOINTS: 'https://e:2379',
      ETCD_TLS_CA: '/gone.pem',
      ETCD_TLS_CERT: '/gone-cert.pem',
      ETCD_TLS_KEY: '/k.pem',
    });
    expect(() => etcdClientOptions(settings, read)).toThrow(
      /^ETCD_TLS_CA: cannot read \/gone.pem: .*\nETCD_TLS_CERT: cannot read \/gone-cert.pem/,
    );
  });
});
