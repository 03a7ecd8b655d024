import { mkdtemp, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { temporalSettings } from '../../domain/config.ts';
import { temporalConnectionOptions } from '../../workers/temporal-connection.ts';

describe('temporalSettings: TLS to a production cluster', () => {
  it('stays plain without any TLS setting (the dev stack on loopback)', () => {
    expect(temporalSettings({}).tls).toBeNull();
    expect(temporalSettings({ TEMPORAL_TLS: 'false' }).tls).toBeNull();
  });

  it('turns TLS on with TEMPORAL_TLS alone (system roots) or with any of its files', () => {
    expect(temporalSettings({ TEMPORAL_TLS: 'true' }).tls).toEqual({
      caFile: null,
      clientCertFile: null,
      clientKeyFile: null,
      serverName: null,
    });
    expect(temporalSettings({ TEMPORAL_TLS_CA: '/etc/t/ca.pem' }).tls?.caFile).toBe('/etc/t/ca.pem');
    expect(
      temporalSettings({
        TEMPORAL_TLS_CERT: '/c.pem',
        TEMPORAL_TLS_KEY: '/k.pem',
        TEMPORAL_TLS_SERVER_NAME: 't.internal',
      }).tls,
    ).toEqual({ caFile: null, clientCertFile: '/c.pem', clientKeyFile: '/k.pem', serverName: 't.internal' });
  });

  it('refuses half a client pair, a contradiction and a word it does not know, naming the setting', () => {
    expect(() => temporalSettings({ TEMPORAL_TLS_CERT: '/c.pem' })).toThrow(
      /TEMPORAL_TLS_CERT and TEMPORAL_TLS_KEY/,
    );
    expect(() => temporalSettings({ TEMPORAL_TLS: 'off', TEMPORAL_TLS_CA: '/ca.pem' })).toThrow(
      /TEMPORAL_TLS is off/,
    );
    expect(() => temporalSettings({ TEMPORAL_TLS: 'maybe' })).toThrow(/TEMPORAL_TLS: expected one of/);
  });

  it('takes the namespace and an API key file from the environment', () => {
    const s = temporalSettings({
      TEMPORAL_NAMESPACE: 'prod.a1b2c',
      TEMPORAL_API_KEY_FILE: '/run/secrets/temporal',
    });
    expect(s.namespace).toBe('prod.a1b2c');
    expect(s.apiKeyFile).toBe('/run/secrets/temporal');
  });
});

describe('temporalConnectionOptions', () => {
  it('is the address alone for the dev stack', async () => {
    expect(await temporalConnectionOptions(temporalSettings({}))).toEqual({ address: '127.0.0.1:7233' });
  });

  it('reads the CA, the client pair and the API key from their files', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'temporal-tls-'));
    const files = { ca: 'CA PEM', crt: 'CERT PEM', key: 'KEY PEM', apikey: 'secret-key\n' };
    for (const [name, text] of Object.entries(files)) await writeFile(path.join(dir, name), text);
    const options = await temporalConnectionOptions(
      temporalSettings({
        TEMPORAL_ADDRESS: 'temporal.prod:7233',
        TEMPORAL_TLS_CA: path.join(dir, 'ca'),
        TEMPORAL_TLS_CERT: path.join(dir, 'crt'),
        TEMPORAL_TLS_KEY: path.join(dir, 'key'),
        TEMPORAL_TLS_SERVER_NAME: 'temporal.internal',
        TEMPORAL_API_KEY_FILE: path.join(dir, 'apikey'),
      }),
    );
    expect(options.address).toBe('temporal.prod:7233');
    expect(options.tls?.serverNameOverride).toBe('temporal.internal');
    expect(Buffer.from(options.tls!.serverRootCACertificate!).toString()).toBe('CA PEM');
    expect(Buffer.from(options.tls!.clientCertPair!.crt).toString()).toBe('CERT PEM');
    expect(Buffer.from(options.tls!.clientCertPair!.key).toString()).toBe('KEY PEM');
    expect(options.apiKey).toBe('secret-key');
  });

  it('fails at start-up naming the setting whose file cannot be read', async () => {
    await expect(
      temporalConnectionOptions(temporalSettings({ TEMPORAL_TLS_CA: '/nonexistent/ca.pem' })),
    ).rejects.toThrow(/^TEMPORAL_TLS_CA: cannot read \/nonexistent\/ca.pem/);
  });
});
