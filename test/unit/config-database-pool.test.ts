import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectDb } from '../../db/client.ts';
import { databaseSettings } from '../../domain/config.ts';

/** PostgreSQL's SSLRequest code: what a client sends first when it wants TLS. */
const SSL_REQUEST = 80877103;

/**
 * A server that records the first message of each connection and refuses TLS ('N'), then hangs up: enough to
 * see whether the pool asked for TLS, without a PostgreSQL.
 */
async function recordingServer(): Promise<{ port: number; firstCodes: number[]; close(): Promise<void> }> {
  const firstCodes: number[] = [];
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => undefined);
    socket.once('data', (data: Buffer) => {
      const code = data.length >= 8 ? data.readInt32BE(4) : -1;
      firstCodes.push(code);
      if (code === SSL_REQUEST) socket.end('N');
      else socket.destroy();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    firstCodes,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

describe("the pool follows DATABASE_URL's sslmode, not PGSSLMODE", () => {
  let server: Awaited<ReturnType<typeof recordingServer>>;
  const savedMode = process.env.PGSSLMODE;
  beforeAll(async () => {
    server = await recordingServer();
    // node-postgres would read this when given no ssl option: the pool always gives one.
    process.env.PGSSLMODE = 'require';
  });
  afterAll(async () => {
    if (savedMode === undefined) delete process.env.PGSSLMODE;
    else process.env.PGSSLMODE = savedMode;
    await server.close();
  });

  async function firstCodeFor(
    query: string,
    env: Record<string, string> = {},
  ): Promise<{ code: number; error: string }> {
    const before = server.firstCodes.length;
    const handle = connectDb(
      databaseSettings({ DATABASE_URL: `postgres://u:p@127.0.0.1:${server.port}/db${query}`, ...env }),
      { connectTimeoutMs: 2_000 },
    );
    let error = '';
    try {
      await handle.db.execute(sql`select 1`);
    } catch (e) {
      for (let c: unknown = e; c instanceof Error; c = c.cause) error += `${c.message} / `;
    } finally {
      await handle.close();
    }
    return { code: server.firstCodes[before] ?? -1, error };
  }

  it('asks for TLS with sslmode=require and verify-full, and fails when the server has none', async () => {
    for (const query of ['?sslmode=require', '?sslmode=verify-full']) {
      const { code, error } = await firstCodeFor(query);
      expect(code, query).toBe(SSL_REQUEST);
      expect(error, query).toMatch(/does not support SSL/);
    }
  });

  it('starts in plain text without sslmode or with sslmode=disable', async () => {
    for (const query of ['', '?sslmode=disable']) {
      const { code } = await firstCodeFor(query);
      expect(code, query).not.toBe(SSL_REQUEST);
      expect(code, query).toBe(196608); // protocol 3.0: the startup message
    }
  });
});
