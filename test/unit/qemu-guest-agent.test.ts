import { fixedAgentCredential } from '../../activities/agent-credentials.ts';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import net, { type AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { MockActivityEnvironment } from '@temporalio/testing';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { migrationActivities } from '../../activities/migration-activities.ts';
import { GUEST_AGENT_CHANNEL, qemuArguments } from '../../agent/drivers/qemu-command.ts';
import { qgaPing, QgaReader } from '../../agent/drivers/qemu-guest-agent.ts';
import type { Db } from '../../db/client.ts';
import { testQemuLaunch } from '../helpers/qemu-launch.ts';
import { testSpec } from '../agent/specs.ts';

const bytes = (text: string) => Buffer.from(text, 'latin1');

describe('the guest agent channel on the QEMU command line', () => {
  const spec = testSpec({ id: 'g-1', disks: [], networks: [] });

  it('puts the same virtio-serial port on source and destination, on a unix socket QEMU serves', () => {
    const launch = testQemuLaunch(spec, { guestAgentSocketPath: '/a,b/qga.sock' });
    const source = qemuArguments(launch);
    const destination = qemuArguments({ ...launch, incoming: true });
    expect(destination.slice(0, source.length)).toEqual(source);
    expect(source).toContain('socket,id=qga0,path=/a,,b/qga.sock,server=on,wait=off');
    expect(source).toContain('virtio-serial-pci,id=virtio-serial0');
    expect(source).toContain(
      `virtserialport,bus=virtio-serial0.0,nr=1,chardev=qga0,id=channel0,name=${GUEST_AGENT_CHANNEL}`,
    );
    expect(GUEST_AGENT_CHANNEL).toBe('org.qemu.guest_agent.0');
  });

  it('leaves the channel out without a socket path', () => {
    expect(qemuArguments(testQemuLaunch(spec)).join(' ')).not.toMatch(/virtio-serial|chardev/);
  });
});

describe('QgaReader: a guest agent byte stream into answers', () => {
  it('splits objects, skips blanks between them and keeps braces inside strings', () => {
    const reader = new QgaReader();
    expect(reader.push(bytes('{"return": 5}\n  {"return": {}}\r\n{"error": {"desc": "a } \\" {"}}'))).toEqual(
      [{ return: 5 }, { return: {} }, { error: { desc: 'a } " {' } }],
    );
  });

  it('joins an answer split over chunks, byte by byte too', () => {
    const reader = new QgaReader();
    const text = '{"return": {"version": "x", "supported_commands": [{"name": "guest-ping"}]}}\n';
    const seen = [...bytes(text)].flatMap((byte) => reader.push(Uint8Array.of(byte)));
    expect(seen).toEqual([{ return: { version: 'x', supported_commands: [{ name: 'guest-ping' }] } }]);
  });

  it('drops what was half read when the 0xFF sentinel comes (guest-sync-delimited)', () => {
    const reader = new QgaReader();
    expect(reader.push(bytes('{"return": {"stale'))).toEqual([]);
    expect(reader.push(bytes('\xff{"return": 42}\n'))).toEqual([{ return: 42 }]);
  });

  it('skips what is not JSON and an answer larger than its limit', () => {
    const reader = new QgaReader(16);
    expect(reader.push(bytes('{nope}{"return": {"far too long for 16": 1}}{"return": 1}'))).toEqual([
      { return: 1 },
    ]);
  });
});

/** A guest agent on a unix socket: answers each request (one JSON object per line) with `answer`. */
async function fakeGuestAgent(
  socketPath: string,
  answer: (request: Record<string, unknown>) => string | null,
): Promise<{ server: net.Server; received: string[] }> {
  const received: string[] = [];
  const server = net.createServer((socket) => {
    let pending = '';
    socket.on('data', (chunk: Buffer) => {
      pending += chunk.toString('latin1');
      let newline;
      while ((newline = pending.indexOf('\n')) >= 0) {
        const line = pending.slice(0, newline);
        pending = pending.slice(newline + 1);
        received.push(line);
        const reply = answer(JSON.parse(line.replace(/^\xff/, '')) as Record<string, unknown>);
        if (reply !== null) socket.write(Buffer.from(reply, 'latin1'));
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(socketPath, resolve));
  return { server, received };
}

/** Answers as qemu-ga does, after a stale answer meant for an earlier client. */
const qemuGa = (request: Record<string, unknown>): string | null => {
  const args = request.arguments as { id?: number } | undefined;
  if (request.execute === 'guest-sync-delimited') return `{"return": 7}\n\xff{"return": ${args?.id}}\n`;
  if (request.execute === 'guest-sync') return `{"return": ${args?.id}}\n`;
  if (request.execute === 'guest-ping') return '{"return": {}}\n';
  return '{"error": {"class": "CommandNotFound", "desc": "no"}}\n';
};

describe('qgaPing: guest-sync, then guest-ping, on the channel socket', () => {
  let dir: string;
  const servers: net.Server[] = [];
  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'vmmig-qga-'));
  });
  afterEach(() => servers.splice(0).forEach((s) => s.close()));
  afterAll(() => rm(dir, { recursive: true, force: true }));

  it('answers true once the guest echoed our sync id (0xFF first, stale answers ignored) and pinged', async () => {
    const socketPath = path.join(dir, 'ok.sock');
    const agent = await fakeGuestAgent(socketPath, qemuGa);
    servers.push(agent.server);
    expect(await qgaPing(socketPath, 1000, 123456)).toBe(true);
    expect(agent.received).toEqual([
      '\xff{"execute":"guest-sync-delimited","arguments":{"id":123456}}',
      '{"execute":"guest-ping"}',
    ]);
  });

  it('answers false without waiting when there is no socket (a guest without the channel)', async () => {
    const started = Date.now();
    expect(await qgaPing(path.join(dir, 'missing.sock'), 5000)).toBe(false);
    expect(Date.now() - started).toBeLessThan(1000);
  });

  it('answers false when nothing in the guest answers within the timeout', async () => {
    const socketPath = path.join(dir, 'silent.sock');
    const agent = await fakeGuestAgent(socketPath, () => null);
    servers.push(agent.server);
    const started = Date.now();
    expect(await qgaPing(socketPath, 200)).toBe(false);
    expect(Date.now() - started).toBeGreaterThanOrEqual(190);
  });

  it('answers false for a wrong sync id or a guest-ping error', async () => {
    const wrongId = path.join(dir, 'wrong.sock');
    servers.push((await fakeGuestAgent(wrongId, () => '\xff{"return": 1}\n')).server);
    expect(await qgaPing(wrongId, 200, 2)).toBe(false);
    const failing = path.join(dir, 'failing.sock');
    servers.push(
      (
        await fakeGuestAgent(failing, (request) =>
          request.execute === 'guest-ping'
            ? '{"error": {"class": "GenericError", "desc": "x"}}\n'
            : qemuGa(request),
        )
      ).server,
    );
    expect(await qgaPing(failing, 1000)).toBe(false);
  });
});

/** A destination agent: GET of the guest from a script of heartbeats, guest-ping from `answered`. */
async function destinationAgent(options: {
  counters: (number | null)[];
  answered: boolean | 'no-route';
}): Promise<{ url: string; server: HttpServer; pings: number }> {
  const state = { pings: 0 };
  const server = createHttpServer((req, res) => {
    req.resume();
    req.on('end', () => {
      const reply = (status: number, body: unknown) =>
        res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
      if (req.method === 'POST' && req.url === '/v1/guests/g-1/guest-ping') {
        state.pings++;
        if (options.answered === 'no-route') {
          reply(404, { error: { code: 'route_not_found', message: 'no route' } });
        } else {
          reply(200, { answered: options.answered, ms: 3 });
        }
        return;
      }
      const counter = options.counters.length > 1 ? options.counters.shift()! : options.counters[0]!;
      reply(200, {
        id: 'g-1',
        status: 'running',
        heartbeat: counter === null ? null : { counter, at: new Date().toISOString() },
      });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    server,
    get pings() {
      return state.pings;
    },
  };
}

describe('verifyGuestAlive: the guest agent first, the heartbeat as the fallback', () => {
  const servers: HttpServer[] = [];
  afterEach(() => servers.splice(0).forEach((s) => s.close()));

  const verify = async (agentUrl: string, timeoutMs = 3000) => {
    const activities = migrationActivities({
      db: {} as Db,
      agentCredentials: fixedAgentCredential('t'),
      liveness: { onlineHostIds: async () => new Set() },
    });
    return new MockActivityEnvironment().run(activities.verifyGuestAlive, {
      agentUrl,
      guestId: 'g-1',
      timeoutMs,
      pollIntervalMs: 10,
    });
  };

  it('is alive via the guest agent when it answers and the guest runs, heartbeat or not', async () => {
    const agent = await destinationAgent({ counters: [null], answered: true });
    servers.push(agent.server);
    expect(await verify(agent.url)).toEqual({
      alive: true,
      firstCounter: null,
      lastCounter: null,
      status: 'running',
      via: 'guest-agent',
    });
  });

  it('falls back to the heartbeat when no guest agent answers, or the agent has no such route', async () => {
    for (const answered of [false, 'no-route'] as const) {
      const agent = await destinationAgent({ counters: [4, 4, 5], answered });
      servers.push(agent.server);
      expect(await verify(agent.url)).toEqual({
        alive: true,
        firstCounter: 4,
        lastCounter: 5,
        status: 'running',
        via: 'heartbeat',
      });
      expect(agent.pings).toBeGreaterThan(0);
    }
  });

  it('is not alive when neither proves it within the timeout (no via)', async () => {
    const agent = await destinationAgent({ counters: [null], answered: false });
    servers.push(agent.server);
    const check = await verify(agent.url, 400);
    expect(check).toEqual({ alive: false, firstCounter: null, lastCounter: null, status: 'running' });
  });
});
