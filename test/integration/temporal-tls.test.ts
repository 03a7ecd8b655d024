import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { Connection } from '@temporalio/client';
import { NativeConnection } from '@temporalio/worker';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { temporalSettings } from '../../domain/config.ts';
import { temporalConnectionOptions } from '../../workers/temporal-connection.ts';
import { makeTestPki } from '../helpers/test-pki.ts';

/**
 * A production Temporal cluster behind TLS with client certificates, as the API and workers reach it from
 * TEMPORAL_TLS_* settings. The dev server speaks plain gRPC only, so a TLS terminator that demands a client
 * certificate from our CA stands in front of it (gRPC over TLS with ALPN h2 is the same HTTP/2 after the
 * handshake).
 */
describe('Temporal over mTLS from configuration', () => {
  let dir: string;
  let proxy: tls.Server;
  let address: string;
  const file = (name: string) => path.join(dir, name);

  beforeAll(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'temporal-mtls-'));
    makeTestPki(dir, {
      ca: 'cn = "test temporal CA"\nca\ncert_signing_key',
      server: 'cn = "temporal.test"\ndns_name = "temporal.test"\ntls_www_server\nencryption_key\nsigning_key',
      client: 'cn = "vmmig-worker"\ntls_www_client\nsigning_key',
    });
    const [host, port] = inject('temporalAddress').split(':') as [string, string];
    proxy = tls.createServer(
      {
        key: readFileSync(file('server-key.pem')),
        cert: readFileSync(file('server.pem')),
        ca: readFileSync(file('ca.pem')),
        requestCert: true,
        rejectUnauthorized: true,
        ALPNProtocols: ['h2'],
      },
      (socket) => {
        const upstream = net.connect(Number(port), host);
        socket.pipe(upstream).pipe(socket);
        const close = () => (socket.destroy(), upstream.destroy());
        socket.on('error', close);
        upstream.on('error', close);
      },
    );
    await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
    address = `127.0.0.1:${(proxy.address() as net.AddressInfo).port}`;
  });

  afterAll(async () => {
    await new Promise((resolve) => proxy?.close(resolve));
    rmSync(dir, { recursive: true, force: true });
  });

  const settings = (extra: Record<string, string> = {}) =>
    temporalSettings({
      TEMPORAL_ADDRESS: address,
      TEMPORAL_NAMESPACE: inject('temporalNamespace'),
      TEMPORAL_TLS_CA: file('ca.pem'),
      TEMPORAL_TLS_SERVER_NAME: 'temporal.test',
      ...extra,
    });

  it('the client (API, activities) and the worker connect with the configured CA and client pair', async () => {
    const options = await temporalConnectionOptions(
      settings({ TEMPORAL_TLS_CERT: file('client.pem'), TEMPORAL_TLS_KEY: file('client-key.pem') }),
    );
    const client = await Connection.connect(options);
    try {
      const info = await client.workflowService.describeNamespace({ namespace: inject('temporalNamespace') });
      expect(info.namespaceInfo?.name).toBe(inject('temporalNamespace'));
    } finally {
      await client.close();
    }
    const worker = await NativeConnection.connect(options);
    await worker.close();
  });

  it('is refused without a client certificate, as the cluster demands one', async () => {
    const options = await temporalConnectionOptions(settings());
    const attempt = async () => {
      const client = await Connection.connect({ ...options, connectTimeout: '3s' });
      try {
        await client.workflowService.describeNamespace({ namespace: inject('temporalNamespace') });
      } finally {
        await client.close();
      }
    };
    await expect(attempt()).rejects.toThrow();
  });

  it('is refused when the server name does not match its certificate', async () => {
    const options = await temporalConnectionOptions(
      settings({
        TEMPORAL_TLS_CERT: file('client.pem'),
        TEMPORAL_TLS_KEY: file('client-key.pem'),
        TEMPORAL_TLS_SERVER_NAME: 'someone-else.test',
      }),
    );
    await expect(
      (async () => {
        const client = await Connection.connect({ ...options, connectTimeout: '3s' });
        await client.close();
      })(),
    ).rejects.toThrow();
  });
});
