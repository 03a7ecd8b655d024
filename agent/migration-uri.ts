import net from 'node:net';

/**
 * The only shapes of address an agent accepts from a caller for a migration or a disk copy. Anything
 * else (QEMU's exec:, file:, unix:, fd:, rdma:, a tcp: uri with options, json:, a file name, garbage)
 * is refused before any hypervisor sees it: QEMU's exec: transport runs a shell command, file: and
 * unix: reach the local file system.
 *
 * Each parser answers the endpoint the uri names, and how to recognise its owner among the peers:
 * - 'address': the host is a registered host's address or migration address (qemu: the migration
 *   stream, NBD), the port the one that host's agent answered for the guest;
 * - 'agent': host:port is a registered host's agent (the sim's transport is its agent's HTTP API).
 * Pure: no look-ups; agent/migration-target.ts applies the peer rules.
 */

export type DriverKind = 'qemu' | 'sim';

export interface Endpoint {
  /** Canonical: lower case, IPv6 without brackets and in its shortest form. */
  host: string;
  port: number;
}

export interface MigrationTarget {
  endpoint: Endpoint;
  owner: 'address' | 'agent';
}

export interface SimTarget extends MigrationTarget {
  migrationId: string;
  guestId: string;
}

export interface ExportTarget extends MigrationTarget {
  exportName: string;
}

export type Parsed<T> = { ok: true; value: T } | { ok: false; expected: string };

const HOST = String.raw`(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?)`;
const PORT = String.raw`([1-9]\d{0,4})`;
const TCP = new RegExp(`^tcp:${HOST}:${PORT}$`);
const NBD_BLOCK = new RegExp(`^nbd:${HOST}:${PORT}$`);
const NBD_EXPORT = new RegExp(`^nbd://${HOST}:${PORT}/([A-Za-z0-9._:-]*)$`);
// The sim names its agent as URL.host does: the port is left out when it is the scheme's default.
const SIM_MIGRATION = new RegExp(
  `^sim\\+(https?)://${HOST}(?::${PORT})?/v1/internal/sim/migrations/([^/?#\\s]+)\\?guest=([^&#\\s]+)$`,
);
const SIM_EXPORT = new RegExp(`^sim\\+nbd://${HOST}(?::${PORT})?/([^/?#\\s]+)/([^/?#\\s]+)$`);

/** A host as uris and peers name it, comparable: null when it is neither an IP address nor a DNS name. */
export function canonicalHost(raw: string): string | null {
  const bare = raw.startsWith('[') && raw.endsWith(']') ? raw.slice(1, -1) : raw;
  if (net.isIPv6(bare)) return new URL(`http://[${bare}]`).hostname.slice(1, -1);
  if (raw !== bare) return null;
  if (net.isIPv4(bare)) return bare;
  if (!/^[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?$/.test(bare) || bare.length > 253) return null;
  // A dotted all-digit name that is no IPv4 address (300.1.1.1, 1.2.3) is not a host either.
  if (/^[\d.]+$/.test(bare)) return null;
  return bare.toLowerCase();
}

function endpointOf(host: string, port: string): Endpoint | null {
  const canonical = canonicalHost(host);
  const number = Number(port);
  if (canonical === null || !Number.isInteger(number) || number < 1 || number > 65_535) return null;
  return { host: canonical, port: number };
}

function decode(part: string): string | null {
  try {
    const value = decodeURIComponent(part);
    return value === '' ? null : value;
  } catch {
    return null;
  }
}

/** host:port for messages, IPv6 in brackets. */
export function endpointText(endpoint: Endpoint): string {
  return endpoint.host.includes(':')
    ? `[${endpoint.host}]:${endpoint.port}`
    : `${endpoint.host}:${endpoint.port}`;
}

export function sameEndpoint(a: Endpoint, b: Endpoint): boolean {
  return a.host === b.host && a.port === b.port;
}

const REFUSED = 'exec:, file:, unix:, fd:, rdma: and every other transport are refused';

/** The migration stream's uri as the destination's prepare-incoming returned it. */
export function parseMigrationUri(uri: string, driver: DriverKind): Parsed<MigrationTarget | SimTarget> {
  if (driver === 'sim') {
    const match = SIM_MIGRATION.exec(uri);
    const defaultPort = match?.[1] === 'https' ? '443' : '80';
    const endpoint = match === null ? null : endpointOf(match[2]!, match[3] ?? defaultPort);
    const migrationId = match === null ? null : decode(match[4]!);
    const guestId = match === null ? null : decode(match[5]!);
    if (endpoint === null || migrationId === null || guestId === null) {
      return {
        ok: false,
        expected: `sim+http://<agent host>:<port>/v1/internal/sim/migrations/<migrationId>?guest=<guestId> as a sim destination's prepare-incoming returns it (${REFUSED})`,
      };
    }
    return { ok: true, value: { endpoint, owner: 'agent', migrationId, guestId } };
  }
  const match = TCP.exec(uri);
  const endpoint = match === null ? null : endpointOf(match[1]!, match[2]!);
  if (endpoint === null) {
    return {
      ok: false,
      expected: `tcp:<host>:<port> as the destination's prepare-incoming returns it (TLS is asked for with tls: true; ${REFUSED})`,
    };
  }
  return { ok: true, value: { endpoint, owner: 'address' } };
}

/** A block migration's NBD target, nbd:<host>:<port> as prepare-incoming returns it (both drivers). */
export function parseBlockNbdUri(uri: string): Parsed<MigrationTarget> {
  const match = NBD_BLOCK.exec(uri);
  const endpoint = match === null ? null : endpointOf(match[1]!, match[2]!);
  if (endpoint === null) {
    return {
      ok: false,
      expected: `nbd:<host>:<port> as the destination's prepare-incoming returns it (${REFUSED})`,
    };
  }
  return { ok: true, value: { endpoint, owner: 'address' } };
}

/** A cold copy's source, as the source agent's disk export returns it. */
export function parseExportNbdUri(uri: string, driver: DriverKind): Parsed<ExportTarget> {
  if (driver === 'sim') {
    const match = SIM_EXPORT.exec(uri);
    const endpoint = match === null ? null : endpointOf(match[1]!, match[2] ?? '80');
    const guestId = match === null ? null : decode(match[3]!);
    const diskId = match === null ? null : decode(match[4]!);
    if (endpoint === null || guestId === null || diskId === null) {
      return {
        ok: false,
        expected: `sim+nbd://<agent host>:<port>/<guestId>/<diskId> as a sim agent's export returns it (${REFUSED})`,
      };
    }
    return { ok: true, value: { endpoint, owner: 'agent', exportName: `${guestId}/${diskId}` } };
  }
  const match = NBD_EXPORT.exec(uri);
  const endpoint = match === null ? null : endpointOf(match[1]!, match[2]!);
  if (endpoint === null) {
    return {
      ok: false,
      expected: `nbd://<host>:<port>/<export> as the source agent's export returns it (${REFUSED})`,
    };
  }
  return { ok: true, value: { endpoint, owner: 'address', exportName: match![3]! } };
}

/** The endpoint of an agent's base URL (http or https), for the sim's 'agent' owners. */
export function agentEndpoint(agentUrl: string): Endpoint | null {
  let url: URL;
  try {
    url = new URL(agentUrl);
  } catch {
    return null;
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return null;
  const port = url.port === '' ? (url.protocol === 'https:' ? '443' : '80') : url.port;
  return endpointOf(url.hostname, port);
}

/** For messages: a caller's value, cut short. */
export function quoted(value: string): string {
  return `'${value.length > 120 ? `${value.slice(0, 120)}…` : value}'`;
}
