import { constants } from 'node:fs';
import { access } from 'node:fs/promises';
import path from 'node:path';
import { conflict } from '../errors.ts';
import type { Logger } from '../log.ts';
import { ensureHostCredentials, type HostCredentialsState } from '../tls-issue.ts';

/**
 * x509 credentials for TLS migration. QEMU's tls-creds-x509 object reads fixed file names from one
 * directory: the CA, and a server and a client certificate with keys (dh-params.pem is optional; QEMU
 * computes DH parameters at start without it, which takes most of a second). Each host has its own
 * directory, <tlsDir>/hosts/<host name>/, whose certificates carry the host's name: as CN (the subject
 * DN that QEMU's authz-simple compares) and as a DNS subjectAltName (what the peer's tls-hostname
 * check matches), plus its migration address. The destination is the TLS server (and the NBD server
 * of a block migration, the source of a cold disk copy serves its export likewise), the other end the
 * client; both verify the peer, and the server admits only the peer host's certificate (tls-authz).
 */
export const TLS_FILES = {
  server: ['ca-cert.pem', 'server-cert.pem', 'server-key.pem'],
  client: ['ca-cert.pem', 'client-cert.pem', 'client-key.pem'],
} as const;
export type TlsEndpoint = keyof typeof TLS_FILES;

/** QOM ids of the credentials objects: the server one is on the incoming QEMU's command line. */
export const TLS_OBJECT_ID: Record<TlsEndpoint, string> = {
  server: 'vmmig-tls-server',
  client: 'vmmig-tls-client',
};

/** QOM id of the authz-simple object that names the one peer a TLS server admits. */
export const TLS_AUTHZ_ID = 'vmmig-tls-peer';

/** The subject DN of a host's certificate, `{host}` standing for its name. */
export const DEFAULT_DN_TEMPLATE = 'CN={host}';

/** The directory of one host's own credentials under the TLS dir. */
export function hostTlsDir(tlsDir: string, hostName: string): string {
  return path.join(tlsDir, 'hosts', hostName);
}

/** RFC 4514 escaping of one attribute value, as GnuTLS prints a DN (and QEMU's authz compares it). */
export function escapeDnValue(value: string): string {
  let escaped = value.replace(/[\\,+"<>;]/g, (char) => `\\${char}`);
  if (/^[# ]/.test(escaped)) escaped = `\\${escaped}`;
  if (/[^\\] $/.test(escaped)) escaped = `${escaped.slice(0, -1)}\\ `;
  return escaped;
}

/** Why a DN template cannot be used, or null. */
export function dnTemplateProblem(template: string): string | null {
  if (!template.includes('{host}')) return `'${template}' has no {host}`;
  if (/["\n\r]/.test(template)) return `'${template}' has a quote or a line break`;
  if (!/^[A-Za-z0-9.]+=/.test(template)) return `'${template}' is not a DN like CN={host},O=Example`;
  return null;
}

/** The subject DN of `hostName`'s certificate, exactly as GnuTLS prints it (`CN=host-1`). */
export function certificateDn(hostName: string, template: string = DEFAULT_DN_TEMPLATE): string {
  const problem = dnTemplateProblem(template);
  if (problem !== null) throw new Error(`certificate DN template: ${problem}`);
  return template.replaceAll('{host}', escapeDnValue(hostName));
}

async function readable(file: string): Promise<boolean> {
  return access(file, constants.R_OK).then(
    () => true,
    () => false,
  );
}

/** The files of `endpoint` missing (or unreadable) in `dir`, in a stable order. */
export async function missingTlsFiles(dir: string, endpoint: TlsEndpoint): Promise<string[]> {
  const missing: string[] = [];
  for (const file of TLS_FILES[endpoint]) {
    if (!(await readable(path.join(dir, file)))) missing.push(file);
  }
  return missing;
}

/** Whether `dir` holds everything both ends need (HostFacts.tlsReady). */
export async function tlsReady(dir: string): Promise<boolean> {
  const files = new Set<string>([...TLS_FILES.server, ...TLS_FILES.client]);
  for (const file of files) if (!(await readable(path.join(dir, file)))) return false;
  return true;
}

/** 409 tls_unavailable naming the first missing file, unless `dir` has what `endpoint` needs. */
export async function assertTlsFiles(dir: string, endpoint: TlsEndpoint): Promise<void> {
  const missing = await missingTlsFiles(dir, endpoint);
  if (missing.length > 0) {
    throw conflict(
      'tls_unavailable',
      `TLS migration needs ${missing.map((f) => path.join(dir, f)).join(', ')} on this host ` +
        '(this host\'s own certificates: see "Migration TLS" in docs/architecture.md; in dev, ' +
        'scripts/setup.sh makes the CA and the agent issues them at start)',
      'tls',
    );
  }
}

/** A value inside a QEMU `-object`/`--object` option string: commas are doubled. */
export function qemuOptionValue(value: string): string {
  return value.replace(/,/g, ',,');
}

/** The `-object`/`--object` value of x509 credentials (verify-peer on: the peer must show a CA-signed certificate). */
export function tlsCredsObject(id: string, dir: string, endpoint: 'server' | 'client'): string {
  return `tls-creds-x509,id=${id},dir=${qemuOptionValue(dir)},endpoint=${endpoint},verify-peer=on`;
}

/** The `-object` value of the destination's server credentials. */
export function tlsServerObject(dir: string): string {
  return tlsCredsObject(TLS_OBJECT_ID.server, dir, 'server');
}

/** The `--object` value of an authz-simple object admitting the one certificate whose DN is `identity`. */
export function authzObject(identity: string): string {
  return `authz-simple,id=${TLS_AUTHZ_ID},identity=${qemuOptionValue(identity)}`;
}

/** The `object-add` arguments of the same authz object (QEMU 7.2 takes them flat). */
export function authzObjectArgs(identity: string): Record<string, unknown> {
  return { 'qom-type': 'authz-simple', id: TLS_AUTHZ_ID, identity };
}

/** The `object-add` arguments of the source's client credentials (QEMU 7.2 takes them flat). */
export function tlsClientObjectArgs(dir: string): Record<string, unknown> {
  return {
    'qom-type': 'tls-creds-x509',
    id: TLS_OBJECT_ID.client,
    dir,
    endpoint: 'client',
    'verify-peer': true,
  };
}

/**
 * migrate-set-parameters of an incoming migration over TLS: the server credentials, and the authz
 * object when the source host is known (without it any certificate of the CA is admitted). tls-authz is
 * left out rather than set to '': QEMU 7.2 looks up an authz object of id '' and refuses every client.
 */
export function incomingTlsParameters(authz: boolean): Record<string, string> {
  return { 'tls-creds': TLS_OBJECT_ID.server, ...(authz ? { 'tls-authz': TLS_AUTHZ_ID } : {}) };
}

/**
 * migrate-set-parameters of an outgoing migration: TLS to `hostname`'s certificate, or none. tls-authz
 * only concerns incoming streams (and every incoming QEMU is a new process): it is not touched.
 */
export function outgoingTlsParameters(hostname: string | null): Record<string, string> {
  return hostname === null
    ? { 'tls-creds': '', 'tls-hostname': '' }
    : { 'tls-creds': TLS_OBJECT_ID.client, 'tls-hostname': hostname };
}

export interface HostTlsOptions {
  tlsDir: string;
  hostName: string;
  /** The host's migration and management addresses, named in certificates it issues itself. */
  addresses: readonly string[];
  /** The CA key to issue with (dev and tests); null: never issue. */
  caKeyFile: string | null;
  dnTemplate: string;
  log: Logger;
}

/** One host's migration TLS: its credentials directory, the DN a peer's certificate carries, issuance. */
export class HostTls {
  readonly dir: string;

  constructor(private readonly options: HostTlsOptions) {
    this.dir = hostTlsDir(options.tlsDir, options.hostName);
  }

  /** The subject DN of `hostName`'s certificate, which a TLS server here admits as its peer. */
  peerDn(hostName: string): string {
    return certificateDn(hostName, this.options.dnTemplate);
  }

  /** Keeps fitting credentials, else issues them when a CA key is at hand (agent/tls-issue.ts). */
  async ensure(): Promise<HostCredentialsState> {
    const { options } = this;
    return ensureHostCredentials({
      tlsDir: options.tlsDir,
      hostDir: this.dir,
      hostName: options.hostName,
      dn: this.peerDn(options.hostName),
      addresses: options.addresses,
      caKeyFile: options.caKeyFile,
      log: options.log,
    });
  }

  ready(): Promise<boolean> {
    return tlsReady(this.dir);
  }

  assertFiles(endpoint: TlsEndpoint): Promise<void> {
    return assertTlsFiles(this.dir, endpoint);
  }
}
