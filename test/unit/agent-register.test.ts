import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { HostFacts } from '../../domain/agent-contract.ts';
import { PeerStore, peersWithAddress } from '../../agent/peers.ts';
import { Registration } from '../../agent/register.ts';

describe('registration answers feed the peer store', () => {
  let server: Server;
  let apiUrl: string;
  let calls = 0;
  let peers: unknown[] = [];

  beforeAll(async () => {
    server = createServer((req, res) => {
      req.resume();
      req.on('end', () => {
        calls += 1;
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ id: 'h1', autoMigrateOnHostDown: false, peers }));
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    apiUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

  it('registers again at once for a host it does not know yet, and learns it', async () => {
    const store = new PeerStore({ refresh: () => registration.refreshNow(), refreshIntervalMs: 0 });
    const registration: Registration = new Registration({
      apiUrl,
      apiToken: 'api',
      facts: async () => ({ hostId: 'h1' }) as HostFacts,
      log: () => {},
      refreshMs: 60_000,
      onRegistered: async (view) => store.follow(view),
    });
    registration.start();
    try {
      await expect.poll(() => calls).toBe(1);
      expect(store.list()).toEqual([]);
      // Registered after this agent's last registration: only a new one tells.
      peers = [
        {
          id: 'h2',
          name: 'host-2',
          address: '10.0.0.2',
          migrationAddress: null,
          agentUrl: 'http://10.0.0.2:9101',
        },
      ];
      const found = await store.find((list) => peersWithAddress('10.0.0.2', list));
      expect(found.map((p) => p.name)).toEqual(['host-2']);
      expect(calls).toBe(2);
      // Concurrent refreshes share one registration.
      await Promise.all([registration.refreshNow(), registration.refreshNow()]);
      expect(calls).toBe(3);
    } finally {
      registration.stop();
    }
  });
});
