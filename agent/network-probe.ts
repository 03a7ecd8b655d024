import net from 'node:net';
import { Hono } from 'hono';
import { z } from 'zod';
import { AgentFailure } from './errors.ts';
import { readBody } from './http.ts';

export const listenProbeSchema = z.object({
  address: z.string().min(1, 'an address of this host'),
  ttlMs: z.number().int().min(100).max(60_000).default(15_000),
});

export const connectProbeSchema = z.object({
  address: z.string().min(1, 'the address to reach'),
  port: z.number().int().min(1).max(65_535),
  timeoutMs: z.number().int().min(100).max(30_000).default(3_000),
});

export interface ConnectProbeResult {
  reachable: boolean;
  latencyMs: number | null;
  error: string | null;
}

/**
 * Reachability between hosts on a given network: the destination opens a short-lived listener on the
 * address under test, the source connects to it. A listener closes after its first connection or its ttl.
 */
export class NetworkProbes {
  private readonly open = new Set<net.Server>();

  async listen(address: string, ttlMs: number): Promise<{ address: string; port: number }> {
    const server = net.createServer((socket) => {
      socket.end();
      this.close(server);
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, address, () => resolve());
    }).catch((error: NodeJS.ErrnoException) => {
      throw new AgentFailure(
        409,
        'address_unavailable',
        `address: cannot listen on ${address} here (${error.code ?? error.message})`,
        'address',
      );
    });
    this.open.add(server);
    setTimeout(() => this.close(server), ttlMs).unref();
    return { address, port: (server.address() as net.AddressInfo).port };
  }

  connect(address: string, port: number, timeoutMs: number): Promise<ConnectProbeResult> {
    const started = Date.now();
    return new Promise((resolve) => {
      const socket = net.connect({ host: address, port });
      const done = (result: ConnectProbeResult) => {
        socket.destroy();
        resolve(result);
      };
      socket.setTimeout(timeoutMs, () =>
        done({ reachable: false, latencyMs: null, error: `timed out after ${timeoutMs} ms` }),
      );
      socket.once('connect', () => done({ reachable: true, latencyMs: Date.now() - started, error: null }));
      socket.once('error', (error: NodeJS.ErrnoException) =>
        done({ reachable: false, latencyMs: null, error: error.code ?? error.message }),
      );
    });
  }

  closeAll(): void {
    for (const server of this.open) this.close(server);
  }

  private close(server: net.Server): void {
    if (this.open.delete(server)) server.close();
  }
}

/**
 * POST /v1/network/listen and /v1/network/connect (bearer auth like every /v1 route). `admitConnect`
 * refuses (400 naming `address`) an address that is no registered host's (agent/migration-target.ts).
 */
export function networkProbeRoutes(
  probes: NetworkProbes,
  admitConnect: (address: string) => Promise<void>,
): Hono {
  return new Hono()
    .post('/listen', async (c) => {
      const { address, ttlMs } = await readBody(c, listenProbeSchema);
      return c.json(await probes.listen(address, ttlMs));
    })
    .post('/connect', async (c) => {
      const { address, port, timeoutMs } = await readBody(c, connectProbeSchema);
      await admitConnect(address);
      return c.json(await probes.connect(address, port, timeoutMs));
    });
}
