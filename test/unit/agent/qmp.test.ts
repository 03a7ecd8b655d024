import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { QmpClient, QmpClosedError, QmpError, type QmpEvent, QmpTimeoutError } from '../../../agent/qmp.ts';

interface FakeQemu {
  socketPath: string;
  /** Commands received, in order. */
  received: { execute: string; arguments?: unknown; id: string }[];
  close(): Promise<void>;
}

type Responder = (command: { execute: string; id: string }, socket: net.Socket) => void;

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

/** A QMP server speaking like QEMU, with a pluggable answer per command. */
async function fakeQemu(respond: Responder, options: { listenAfterMs?: number } = {}): Promise<FakeQemu> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'qmp-test-'));
  const socketPath = path.join(dir, 'qmp.sock');
  const received: FakeQemu['received'] = [];
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.write(
      '{"QMP": {"version": {"qemu": {"micro": 0, "minor": 2, "major": 7}}, "capabilities": ["oob"]}}\r\n',
    );
    let buffer = '';
    socket.on('data', (chunk) => {
      buffer += chunk.toString();
      let newline;
      while ((newline = buffer.indexOf('\n')) >= 0) {
        const command = JSON.parse(buffer.slice(0, newline)) as FakeQemu['received'][number];
        buffer = buffer.slice(newline + 1);
        received.push(command);
        if (command.execute === 'qmp_capabilities') socket.write(`{"return": {}, "id": "${command.id}"}\r\n`);
        else respond(command, socket);
      }
    });
  });
  const listen = () => new Promise<void>((resolve) => server.listen(socketPath, resolve));
  if (options.listenAfterMs === undefined) await listen();
  else setTimeout(() => void listen(), options.listenAfterMs);
  const fake = {
    socketPath,
    received,
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  cleanups.push(async () => {
    await fake.close().catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
  });
  return fake;
}

describe('QMP client framing', () => {
  it('negotiates capabilities, then matches replies to commands by id', async () => {
    const fake = await fakeQemu((command, socket) => {
      socket.write(
        `{"return": {"status": "running", "for": "${command.execute}"}, "id": "${command.id}"}\r\n`,
      );
    });
    const client = await QmpClient.connect(fake.socketPath);
    const status = await client.execute<{ status: string; for: string }>('query-status');
    expect(status).toEqual({ status: 'running', for: 'query-status' });
    expect(fake.received.map((c) => c.execute)).toEqual(['qmp_capabilities', 'query-status']);
    expect(fake.received[1]!.id).toMatch(/\S/);
    await client.close();
    expect(client.closed).toBe(true);
  });

  it('sends arguments and survives replies split across chunks, out of order, between events', async () => {
    const pending: { execute: string; id: string }[] = [];
    const fake = await fakeQemu((command, socket) => {
      pending.push(command);
      if (pending.length < 2) return;
      const [first, second] = pending;
      const text =
        '{"timestamp": {"seconds": 1, "microseconds": 2}, "event": "MIGRATION", "data": {"status": "active"}}\r\n' +
        `{"return": {"n": 2}, "id": "${second!.id}"}\r\n` +
        `{"return": {"n": 1}, "id": "${first!.id}"}\r\n`;
      socket.write(text.slice(0, 17));
      setTimeout(() => socket.write(text.slice(17, 90)), 5);
      setTimeout(() => socket.write(text.slice(90)), 10);
    });
    const client = await QmpClient.connect(fake.socketPath);
    const events: QmpEvent[] = [];
    client.onEvent((event) => events.push(event));
    const [one, two] = await Promise.all([
      client.execute('migrate', { uri: 'tcp:127.0.0.1:4444' }),
      client.execute('query-migrate'),
    ]);
    expect(one).toEqual({ n: 1 });
    expect(two).toEqual({ n: 2 });
    expect(events).toEqual([
      { timestamp: { seconds: 1, microseconds: 2 }, event: 'MIGRATION', data: { status: 'active' } },
    ]);
    expect(fake.received[1]!.arguments).toEqual({ uri: 'tcp:127.0.0.1:4444' });
    await client.close();
  });

  it('turns a QMP error into a QmpError carrying its class and description', async () => {
    const fake = await fakeQemu((command, socket) => {
      socket.write(
        `{"error": {"class": "GenericError", "desc": "There's a migration process in progress"}, "id": "${command.id}"}\n`,
      );
    });
    const client = await QmpClient.connect(fake.socketPath);
    const error = await client.execute('migrate', { uri: 'x' }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(QmpError);
    expect((error as QmpError).errorClass).toBe('GenericError');
    expect((error as QmpError).desc).toContain('migration process');
    await client.close();
  });

  it('times out a command that gets no answer, and fails pending commands when QEMU goes away', async () => {
    const fake = await fakeQemu(() => undefined);
    const client = await QmpClient.connect(fake.socketPath);
    await expect(client.execute('query-status', undefined, 100)).rejects.toBeInstanceOf(QmpTimeoutError);
    const closeReasons: string[] = [];
    client.onClose((reason) => closeReasons.push(reason));
    const pending = client.execute('query-status', undefined, 5_000);
    await fake.close();
    await expect(pending).rejects.toBeInstanceOf(QmpClosedError);
    expect(client.closed).toBe(true);
    expect(closeReasons).toHaveLength(1);
    await expect(client.execute('query-status')).rejects.toBeInstanceOf(QmpClosedError);
  });

  it('waits for a socket QEMU has not created yet', async () => {
    const fake = await fakeQemu(
      (command, socket) => socket.write(`{"return": {}, "id": "${command.id}"}\n`),
      {
        listenAfterMs: 300,
      },
    );
    const client = await QmpClient.connect(fake.socketPath, { connectTimeoutMs: 5_000 });
    expect(await client.execute('cont')).toEqual({});
    await client.close();
  });

  it('gives up connecting after the connect timeout', async () => {
    const missing = path.join(os.tmpdir(), `no-qmp-${process.pid}.sock`);
    await expect(QmpClient.connect(missing, { connectTimeoutMs: 200 })).rejects.toMatchObject({
      code: 'ENOENT',
    });
  });
});
