import { constants } from 'node:fs';
import { access } from 'node:fs/promises';
import path from 'node:path';
import { conflict } from '../errors.ts';

/**
 * x509 credentials for TLS migration. QEMU's tls-creds-x509 object reads fixed file names from one
 * directory (scripts/setup.sh makes them): the CA, and a server and a client certificate with keys.
 * The destination is the TLS server (and the NBD server of a block migration), the source the client;
 * both verify the peer.
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
      `TLS migration needs ${missing.map((f) => path.join(dir, f)).join(', ')} on this host (run scripts/setup.sh, or set AGENT_TLS_DIR)`,
      'tls',
    );
  }
}

/** The `-object` value of the destination's server credentials. */
export function tlsServerObject(dir: string): string {
  return `tls-creds-x509,id=${TLS_OBJECT_ID.server},dir=${dir.replace(/,/g, ',,')},endpoint=server,verify-peer=on`;
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
