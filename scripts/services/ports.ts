import fs from 'node:fs';
import net from 'node:net';

export const LOOPBACK = '127.0.0.1';

/** Where the kernel takes the local ports of outgoing connections and of `listen(0)`. */
export interface PortRange {
  low: number;
  high: number;
}

const LINUX_EPHEMERAL_DEFAULT: PortRange = { low: 32768, high: 60999 };
/** The lowest port we hand out: above the well-known and most registered services' ports. */
const LOWEST_PICKED_PORT = 16384;
const MIN_PICK_RANGE = 1024;

/**
 * The range ports are picked from: below the kernel's ephemeral range. A port picked inside it is free when
 * checked but may be taken by any outgoing connection before the server binds it (the chaos stack picks its
 * ports up front and lost PostgreSQL's that way in CI). Undefined when the ephemeral range leaves too little
 * room below it: then the kernel picks.
 */
export function pickRangeBelow(ephemeral: PortRange): PortRange | undefined {
  const high = ephemeral.low - 1;
  return high - LOWEST_PICKED_PORT + 1 >= MIN_PICK_RANGE ? { low: LOWEST_PICKED_PORT, high } : undefined;
}

export function parsePortRange(text: string): PortRange | undefined {
  const [low, high] = text.trim().split(/\s+/).map(Number);
  if (!Number.isInteger(low) || !Number.isInteger(high) || (low as number) > (high as number))
    return undefined;
  return { low: low as number, high: high as number };
}

function ephemeralRange(): PortRange {
  try {
    return (
      parsePortRange(fs.readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8')) ??
      LINUX_EPHEMERAL_DEFAULT
    );
  } catch {
    return LINUX_EPHEMERAL_DEFAULT;
  }
}

const MAX_TRIES_PER_PORT = 50;

/**
 * Ports free on the loopback address, distinct from each other, picked at random below the kernel's ephemeral
 * range (see pickRangeBelow). All sockets stay open until every port is chosen so that one call never returns
 * the same port twice.
 */
export async function freePorts(count: number): Promise<number[]> {
  const range = pickRangeBelow(ephemeralRange());
  const servers: net.Server[] = [];
  try {
    for (let i = 0; i < count; i++) servers.push(await listenOnFreePort(range));
    return servers.map((s) => (s.address() as net.AddressInfo).port);
  } finally {
    await Promise.all(servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
  }
}

async function listenOnFreePort(range: PortRange | undefined): Promise<net.Server> {
  if (range) {
    for (let attempt = 0; attempt < MAX_TRIES_PER_PORT; attempt++) {
      const port = range.low + Math.floor(Math.random() * (range.high - range.low + 1));
      const server = await listen(port).catch(() => undefined);
      if (server) return server;
    }
  }
  return listen(0);
}

function listen(port: number): Promise<net.Server> {
  const server = net.createServer();
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, LOOPBACK, () => resolve(server));
  });
}

export async function freePort(): Promise<number> {
  const [port] = await freePorts(1);
  return port as number;
}

/** True when nothing listens on the port and we may bind it. */
export async function isPortFree(port: number, host = LOOPBACK): Promise<boolean> {
  const server = net.createServer();
  return new Promise((resolve) => {
    server.once('error', () => resolve(false));
    server.listen(port, host, () => server.close(() => resolve(true)));
  });
}
