import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Etcd3, Range } from 'etcd3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HostLiveness } from '../../activities/host-liveness.ts';
import { Liveness } from '../../agent/liveness.ts';
import { etcdClientOptions, etcdSettings, type Env } from '../../domain/config.ts';
import { freePorts } from '../../scripts/services/ports.ts';
import { startProcess, type ManagedProcess } from '../../scripts/services/process.ts';
import { makeTestPki } from '../helpers/test-pki.ts';
import { waitFor } from '../helpers/wait.ts';

/**
 * A production etcd: client TLS with client certificates (`--client-cert-auth`) and password auth on. The
 * agent's lease and the API's and workers' reads reach it from ETCD_* settings alone; a client without the
 * certificate, or with a wrong password, does not.
 */
describe('etcd over TLS with auth, from configuration', () => {
  let dir: string;
  let etcd: ManagedProcess;
  let endpoint: string;
  const file = (name: string) => path.join(dir, name);
  const PREFIX = 'tlsprefix';
  const env = (extra: Env = {}): Env => ({
    ETCD_ENDPOINTS: endpoint,
    ETCD_PREFIX: PREFIX,
    ETCD_TLS_CA: file('ca.pem'),
    ETCD_TLS_CERT: file('client.pem'),
    ETCD_TLS_KEY: file('client-key.pem'),
    ETCD_USERNAME: 'vmmig',
    ETCD_PASSWORD: 'agent-password',
    ...extra,
  });

  beforeAll(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'etcd-tls-'));
    makeTestPki(dir, {
      ca: 'cn = "test etcd CA"\nca\ncert_signing_key',
      server:
        'cn = "etcd"\nip_address = "127.0.0.1"\ntls_www_server\ntls_www_client\nencryption_key\nsigning_key',
      client: 'cn = "vmmig"\ntls_www_client\nsigning_key',
    });
    const [clientPort, peerPort] = (await freePorts(2)) as [number, number];
    endpoint = `https://127.0.0.1:${clientPort}`;
    const peer = `http://127.0.0.1:${peerPort}`;
    etcd = startProcess({
      name: 'etcd-tls',
      command: 'etcd',
      args: [
        '--name=tls',
        `--data-dir=${file('data')}`,
        `--listen-client-urls=${endpoint}`,
        `--advertise-client-urls=${endpoint}`,
        `--listen-peer-urls=${peer}`,
        `--initial-advertise-peer-urls=${peer}`,
        `--initial-cluster=tls=${peer}`,
        `--cert-file=${file('server.pem')}`,
        `--key-file=${file('server-key.pem')}`,
        `--trusted-ca-file=${file('ca.pem')}`,
        '--client-cert-auth',
      ],
      logFile: file('etcd.log'),
      env: Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith('ETCD_'))),
    });
    // The set-up client: the server's certificate (also a client one), before auth is on.
    const admin = new Etcd3({
      hosts: [endpoint],
      dialTimeout: 3000,
      credentials: {
        rootCertificate: readFileSync(file('ca.pem')),
        certChain: readFileSync(file('server.pem')),
        privateKey: readFileSync(file('server-key.pem')),
      },
    });
    try {
      await waitFor('the TLS etcd to answer', async () => {
        await admin.get('probe').string();
        return true;
      });
      await admin
        .role('root')
        .create()
        .catch(() => undefined); // built in on some versions
      await (await admin.user('root').create('root-password')).addRole('root');
      await admin.role('vmmig').create();
      await admin.role('vmmig').grant({ permission: 'Readwrite', range: Range.prefix(`/${PREFIX}/`) });
      await (await admin.user('vmmig').create('agent-password')).addRole('vmmig');
      await admin.auth.authEnable();
    } finally {
      admin.close();
    }
  }, 60_000);

  afterAll(async () => {
    await etcd?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("an agent's lease and the control plane's reads work with the configured CA, client pair and user", async () => {
    const settings = etcdSettings(env());
    const liveness = new Liveness({
      ...settings,
      ttlSeconds: 5,
      hostId: 'host-tls',
      name: 'host-tls',
      agentUrl: () => 'http://127.0.0.1:1',
      log: () => undefined,
    });
    liveness.start();
    const reader = new HostLiveness(settings);
    try {
      await liveness.whenHeld();
      expect(await reader.onlineHostIds()).toEqual(new Set(['host-tls']));
      // One host's view reads its key alone; a key that only starts with the id is another host's.
      expect(await reader.isOnline('host-tls')).toBe(true);
      expect(await reader.isOnline('host-tl')).toBe(false);
    } finally {
      await liveness.stop({ revoke: true });
      reader.close();
    }
  });

  /** What a client made from these settings gets for a read; 'ok' when it succeeds. */
  async function attempt(settings: Env): Promise<string> {
    const client = new Etcd3(etcdClientOptions(etcdSettings(settings), readFileSync));
    try {
      await client
        .get(`/${PREFIX}/x`)
        .options({ deadline: Date.now() + 3_000 })
        .string();
      return 'ok';
    } catch (error) {
      return (error as Error).message;
    } finally {
      client.close();
    }
  }

  it('refuses a client without the client certificate, or with a wrong password', async () => {
    expect(await attempt(env())).toBe('ok');
    expect(await attempt(env({ ETCD_TLS_CERT: '', ETCD_TLS_KEY: '' }))).not.toBe('ok');
    expect(await attempt(env({ ETCD_PASSWORD: 'wrong' }))).toMatch(/authentication failed|invalid/i);
  });
});
