import { execFile } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { chmod, copyFile, mkdir, mkdtemp, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import path from 'node:path';
import { promisify } from 'node:util';
import { errorMessage, type Logger } from './log.ts';

/**
 * Issues a host its own migration TLS credentials from a CA whose key is on this machine: the dev stack
 * and the tests, where scripts/setup.sh made the CA and hosts come and go. Production brings its own
 * (docs/architecture.md, "Migration TLS") and gives the agent no CA key, so nothing is issued there.
 * certtool (Debian's gnutls-bin, as QEMU's documentation uses) does the signing.
 */

const run = promisify(execFile);

/** Host names a certificate (and a DN, a certtool template, a QEMU option) can carry as they are. */
export const CERTIFICATE_NAME = /^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,251}[A-Za-z0-9])?$/;

export function isCertificateName(name: string): boolean {
  return CERTIFICATE_NAME.test(name);
}

export const CA_CERT_FILE = 'ca-cert.pem';
export const CA_KEY_FILE = 'ca-key.pem';
const ROLES = ['server', 'client'] as const;
type Role = (typeof ROLES)[number];
/** What a host's credentials directory holds once issued (dh-params.pem spares QEMU computing them). */
export const HOST_CREDENTIAL_FILES = [
  'ca-cert.pem',
  'server-cert.pem',
  'server-key.pem',
  'client-cert.pem',
  'client-key.pem',
  'dh-params.pem',
] as const;
const DEFAULT_DAYS = 3650;
/** A certificate this close to its end is issued again. */
const RENEW_BEFORE_MS = 7 * 86_400_000;

export interface IssueRequest {
  /** Empty directory the files go into. */
  dir: string;
  caCertFile: string;
  caKeyFile: string;
  hostName: string;
  /** The subject DN, as GnuTLS prints it (qemu-tls.ts certificateDn). */
  dn: string;
  /** Addresses the certificates also name (IP or DNS subjectAltNames). */
  addresses: readonly string[];
  certtool?: string;
  days?: number;
}

/** A certtool template for one role's certificate. Pure. */
export function certtoolTemplate(input: {
  role: Role;
  dn: string;
  hostName: string;
  addresses: readonly string[];
  days: number;
}): string {
  if (!isCertificateName(input.hostName)) throw new Error(`'${input.hostName}' cannot be a certificate name`);
  if (/["\\\n\r]/.test(input.dn)) throw new Error(`DN '${input.dn}' has a quote, backslash or line break`);
  const lines = [`dn = "${input.dn}"`, `dns_name = "${input.hostName}"`];
  const seen = new Set([input.hostName]);
  for (const address of input.addresses) {
    if (seen.has(address) || address === '0.0.0.0' || address === '::') continue;
    seen.add(address);
    if (isIP(address) !== 0) lines.push(`ip_address = "${address}"`);
    else if (isCertificateName(address)) lines.push(`dns_name = "${address}"`);
  }
  lines.push(
    input.role === 'server' ? 'tls_www_server' : 'tls_www_client',
    'signing_key',
    'encryption_key',
    `expiration_days = ${input.days}`,
  );
  return `${lines.join('\n')}\n`;
}

/** Writes a host's credentials (HOST_CREDENTIAL_FILES) into `request.dir`, signed by the CA. */
export async function issueHostCredentials(request: IssueRequest): Promise<void> {
  const certtool = request.certtool ?? 'certtool';
  const days = request.days ?? DEFAULT_DAYS;
  const file = (name: string) => path.join(request.dir, name);
  const certtoolRun = async (args: string[]) => {
    try {
      await run(certtool, args, { maxBuffer: 4 * 1024 * 1024 });
    } catch (error) {
      const stderr = (error as { stderr?: string }).stderr?.trim().split('\n').slice(-2).join(' | ');
      throw new Error(`certtool ${args[0]} failed: ${stderr || errorMessage(error)}`);
    }
  };
  for (const role of ROLES) {
    const template = file(`${role}.info`);
    await writeFile(template, certtoolTemplate({ ...request, role, days }));
    await certtoolRun([
      '--generate-privkey',
      '--key-type=rsa',
      '--bits=2048',
      '--outfile',
      file(`${role}-key.pem`),
    ]);
    await chmod(file(`${role}-key.pem`), 0o600);
    await certtoolRun([
      '--generate-certificate',
      '--load-privkey',
      file(`${role}-key.pem`),
      '--load-ca-certificate',
      request.caCertFile,
      '--load-ca-privkey',
      request.caKeyFile,
      '--template',
      template,
      '--outfile',
      file(`${role}-cert.pem`),
    ]);
    await rm(template, { force: true });
  }
  await certtoolRun(['--generate-dh-params', '--sec-param=medium', '--outfile', file('dh-params.pem')]);
  await copyFile(request.caCertFile, file('ca-cert.pem'));
}

/**
 * Why the credentials in `dir` do not fit `hostName` under this CA (a file missing, another CA, another
 * subject, the name not among the subjectAltNames, expired or about to), or null when they do.
 */
export async function credentialsProblem(input: {
  dir: string;
  caCertFile: string;
  hostName: string;
  dn: string;
  nowMs?: number;
}): Promise<string | null> {
  const read = (name: string) => readFile(path.join(input.dir, name)).catch(() => null);
  const missing: string[] = [];
  const contents = new Map<string, Buffer>();
  for (const name of HOST_CREDENTIAL_FILES.filter((f) => f !== 'dh-params.pem')) {
    const content = await read(name);
    if (content === null) missing.push(name);
    else contents.set(name, content);
  }
  if (missing.length > 0) return `missing ${missing.join(', ')}`;
  const ca = await readFile(input.caCertFile).catch(() => null);
  if (ca !== null && !ca.equals(contents.get('ca-cert.pem')!))
    return `its ca-cert.pem is not ${input.caCertFile}`;
  let caCert: X509Certificate;
  try {
    caCert = new X509Certificate(ca ?? contents.get('ca-cert.pem')!);
  } catch (error) {
    return `unreadable CA certificate: ${errorMessage(error)}`;
  }
  const nowMs = input.nowMs ?? Date.now();
  for (const role of ROLES) {
    let cert: X509Certificate;
    try {
      cert = new X509Certificate(contents.get(`${role}-cert.pem`)!);
    } catch (error) {
      return `unreadable ${role}-cert.pem: ${errorMessage(error)}`;
    }
    if (!cert.checkIssued(caCert) || !cert.verify(caCert.publicKey))
      return `${role}-cert.pem is not signed by the CA`;
    const dn = subjectDn(cert);
    if (dn !== input.dn) return `${role}-cert.pem is for '${dn}', not '${input.dn}'`;
    if (cert.checkHost(input.hostName, { subject: 'never' }) === undefined) {
      return `${role}-cert.pem does not name ${input.hostName} among its subjectAltNames`;
    }
    if (Date.parse(cert.validTo) - nowMs < RENEW_BEFORE_MS) return `${role}-cert.pem expires ${cert.validTo}`;
  }
  return null;
}

/** The subject as GnuTLS prints it: Node lists the attributes in encoding order, one a line. */
function subjectDn(cert: X509Certificate): string {
  return cert.subject.split('\n').reverse().join(',');
}

export type HostCredentialsState =
  { status: 'present' } | { status: 'issued' } | { status: 'unfit'; problem: string };

export interface HostCredentialsInput {
  /** The TLS dir: the CA certificate is <tlsDir>/ca-cert.pem. */
  tlsDir: string;
  /** This host's credentials directory (qemu-tls.ts hostTlsDir). */
  hostDir: string;
  hostName: string;
  dn: string;
  addresses: readonly string[];
  /** The CA key that may sign; null: never issue (production). */
  caKeyFile: string | null;
  certtool?: string;
  log: Logger;
}

/**
 * Makes sure `hostDir` holds this host's credentials: kept when they fit, else issued afresh when a CA
 * key is at hand. Issued into a temporary directory renamed into place, so that agents of the same name
 * starting together (tests) never see half a set: the first rename wins, the others keep its files.
 */
export async function ensureHostCredentials(input: HostCredentialsInput): Promise<HostCredentialsState> {
  const caCertFile = path.join(input.tlsDir, CA_CERT_FILE);
  const check = () =>
    credentialsProblem({ dir: input.hostDir, caCertFile, hostName: input.hostName, dn: input.dn });
  const problem = await check();
  if (problem === null) return { status: 'present' };
  const caKeyFile = input.caKeyFile;
  const unusable = (why: string): HostCredentialsState => {
    const effect = problem.startsWith('missing')
      ? 'TLS migration to and from this host fails until they are there'
      : 'they are used as they are';
    input.log(`migration TLS credentials in ${input.hostDir}: ${problem}; ${why}; ${effect}`);
    return { status: 'unfit', problem };
  };
  if (caKeyFile === null)
    return unusable('no CA key to issue them with (AGENT_TLS_CA_KEY): bring them (docs/architecture.md)');
  const caReadable = await Promise.all([readFile(caCertFile), readFile(caKeyFile)]).then(
    () => true,
    () => false,
  );
  if (!caReadable) return unusable(`cannot read the CA (${caCertFile}, ${caKeyFile}): run scripts/setup.sh`);
  if (!isCertificateName(input.hostName)) return unusable(`'${input.hostName}' cannot be a certificate name`);
  const hostsDir = path.dirname(input.hostDir);
  await mkdir(hostsDir, { recursive: true, mode: 0o700 });
  const work = await mkdtemp(path.join(hostsDir, `.${input.hostName}.issuing-`));
  try {
    await issueHostCredentials({ ...input, dir: work, caCertFile, caKeyFile });
    if (!(await install(work, input.hostDir, check))) return { status: 'present' };
  } catch (error) {
    return unusable(`issuing them failed: ${errorMessage(error)}`);
  } finally {
    await rm(work, { recursive: true, force: true });
  }
  input.log(
    `migration TLS: issued ${input.hostName}'s certificates (${input.dn}) in ${input.hostDir}, signed by ${caCertFile} (${problem})`,
  );
  return { status: 'issued' };
}

/**
 * Renames `work` to `target` (true); a fitting set another agent put there first is kept (false), an
 * unfit one replaced.
 */
async function install(work: string, target: string, check: () => Promise<string | null>): Promise<boolean> {
  for (let attempt = 0; attempt < 3; attempt += 1) {
    try {
      await rename(work, target);
      return true;
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code !== 'ENOTEMPTY' && code !== 'EEXIST') throw error;
    }
    if ((await check()) === null) return false;
    const aside = `${target}.old-${process.pid}-${Date.now()}`;
    await rename(target, aside).catch(() => undefined);
    await rm(aside, { recursive: true, force: true });
  }
  throw new Error(`cannot put the certificates in place at ${target}`);
}
