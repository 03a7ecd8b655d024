import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { databaseUnavailableReason } from '../../api/database-errors.ts';
import { connectDb, DEFAULT_DB_POOL_OPTIONS } from '../../db/client.ts';

/** A TCP server that accepts connections and never answers: PostgreSQL hung, or a black-holed network. */
async function silentServer(): Promise<{ port: number; close(): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => undefined);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

/** The error and its causes: drizzle wraps the driver's error. */
function messages(err: unknown): string {
  const all: string[] = [];
  for (let e: unknown = err; e instanceof Error; e = e.cause) all.push(e.message);
  return all.join(' / ');
}

/** A port nothing listens on. */
async function closedPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

describe('database pool timeouts', () => {
  let silent: Awaited<ReturnType<typeof silentServer>>;
  beforeAll(async () => {
    silent = await silentServer();
  });
  afterAll(async () => silent?.close());

  it('does not take an ordinary failure for an outage', () => {
    expect(databaseUnavailableReason(new Error('duplicate key value violates unique constraint'))).toBeNull();
  });

  it('defaults to 5 s to connect and 15 s per statement and query', () => {
    expect(DEFAULT_DB_POOL_OPTIONS).toMatchObject({
      connectTimeoutMs: 5_000,
      statementTimeoutMs: 15_000,
      queryTimeoutMs: 15_000,
    });
  });

  it('fails a query within the connect timeout when PostgreSQL does not answer', async () => {
    const handle = connectDb(`postgres://nobody:secret@127.0.0.1:${silent.port}/none`, {
      connectTimeoutMs: 500,
    });
    const began = Date.now();
    try {
      const failure = await handle.db.execute(sql`select 1`).then(
        () => null,
        (err: Error) => err,
      );
      expect(Date.now() - began).toBeLessThan(2_000);
      expect(messages(failure)).toMatch(/connection timeout/);
      // The API answers such a failure with a 503 naming it, not an anonymous 500.
      expect(databaseUnavailableReason(failure)).toMatch(/connection timeout/);
    } finally {
      await handle.close();
    }
  });

  it('fails a query at once, naming the refusal, when nothing listens', async () => {
    const handle = connectDb(`postgres://nobody:secret@127.0.0.1:${await closedPort()}/none`, {
      connectTimeoutMs: 500,
    });
    const began = Date.now();
    try {
      const failure = await handle.db.execute(sql`select 1`).then(
        () => null,
        (err: Error) => err,
      );
      expect(Date.now() - began).toBeLessThan(2_000);
      expect(messages(failure)).toMatch(/ECONNREFUSED/);
      expect(databaseUnavailableReason(failure)).toMatch(/ECONNREFUSED/);
    } finally {
      await handle.close();
    }
  });
});
