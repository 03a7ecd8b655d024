import { execFile } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { credentialsProblem, ensureHostCredentials, issueHostCredentials } from '../../agent/tls-issue.ts';

const run = promisify(execFile);

/** A throwaway CA made with certtool, as scripts/lib/qemu-tls.sh makes the dev one. */
async function makeCa(dir: string, cn: string): Promise<void> {
  await mkdir(dir, { recursive: true });
  await writeFile(path.join(dir, 'ca.info'), `cn = "${cn}"\nca\ncert_signing_key\nexpiration_days = 30\n`);
  await run('certtool', ['--generate-privkey', '--outfile', path.join(dir, 'ca-key.pem')]);
  await run('certtool', [
    '--generate-self-signed',
    '--load-privkey',
    path.join(dir, 'ca-key.pem'),
    '--template',
    path.join(dir, 'ca.info'),
    '--outfile',
    path.join(dir, 'ca-cert.pem'),
  ]);
}

describe('agent/tls-issue: a host issues its own certificates from the dev CA', () => {
  let root: string;
  let tlsDir: string;
  const lines: string[] = [];
  const log = (line: string) => lines.push(line);
  const input = (hostName: string, overrides: Partial<Parameters<typeof ensureHostCredentials>[0]> = {}) => ({
    tlsDir,
    hostDir: path.join(tlsDir, 'hosts', hostName),
    hostName,
    dn: `CN=${hostName}`,
    addresses: ['127.0.0.1'],
    caKeyFile: path.join(tlsDir, 'ca-key.pem'),
    log,
    ...overrides,
  });

  beforeAll(async () => {
    root = await mkdtemp(path.join(os.tmpdir(), 'vmmig-tls-issue-'));
    tlsDir = path.join(root, 'tls');
    await makeCa(tlsDir, 'test CA one');
  });
  afterAll(() => rm(root, { recursive: true, force: true }));

  it('issues once, concurrently safe, with CN and subjectAltNames of the host and private keys', async () => {
    const results = await Promise.all([1, 2, 3].map(() => ensureHostCredentials(input('host-a'))));
    expect(results.filter((r) => r.status === 'issued')).toHaveLength(1);
    expect(results.filter((r) => r.status === 'present')).toHaveLength(2);
    const dir = path.join(tlsDir, 'hosts', 'host-a');
    for (const role of ['server', 'client']) {
      const cert = new X509Certificate(await readFile(path.join(dir, `${role}-cert.pem`)));
      expect(cert.subject).toBe('CN=host-a');
      expect(cert.subjectAltName).toBe('DNS:host-a, IP Address:127.0.0.1');
      expect(cert.checkIssued(new X509Certificate(await readFile(path.join(tlsDir, 'ca-cert.pem'))))).toBe(
        true,
      );
      expect((await stat(path.join(dir, `${role}-key.pem`))).mode & 0o077).toBe(0);
    }
    expect(await readFile(path.join(dir, 'ca-cert.pem'))).toEqual(
      await readFile(path.join(tlsDir, 'ca-cert.pem')),
    );
    await expect(stat(path.join(dir, 'dh-params.pem'))).resolves.toBeTruthy();
    expect(await ensureHostCredentials(input('host-a'))).toEqual({ status: 'present' });
    // Nothing half-made is left next to it.
    expect((await readdir(path.join(tlsDir, 'hosts'))).sort()).toEqual(['host-a']);
  });

  it('says what does not fit: another name, another DN, near expiry', async () => {
    const base = { dir: path.join(tlsDir, 'hosts', 'host-a'), caCertFile: path.join(tlsDir, 'ca-cert.pem') };
    expect(await credentialsProblem({ ...base, hostName: 'host-a', dn: 'CN=host-a' })).toBeNull();
    expect(await credentialsProblem({ ...base, hostName: 'host-b', dn: 'CN=host-a' })).toMatch(
      /does not name host-b/,
    );
    expect(await credentialsProblem({ ...base, hostName: 'host-a', dn: 'CN=host-a,O=x' })).toMatch(
      /is for 'CN=host-a', not 'CN=host-a,O=x'/,
    );
    expect(
      await credentialsProblem({
        ...base,
        hostName: 'host-a',
        dn: 'CN=host-a',
        nowMs: Date.now() + 4000 * 86_400_000,
      }),
    ).toMatch(/expires/);
  });

  it('issues a template DN; without a CA key it only says why the files do not fit', async () => {
    const dn = 'CN=host-t,OU=hypervisors,O=Example';
    expect(await ensureHostCredentials(input('host-t', { dn }))).toEqual({ status: 'issued' });
    const cert = new X509Certificate(await readFile(path.join(tlsDir, 'hosts', 'host-t', 'server-cert.pem')));
    expect(cert.subject.split('\n').reverse().join(',')).toBe(dn);
    const unfit = await ensureHostCredentials(input('host-t', { dn: 'CN=host-t', caKeyFile: null }));
    expect(unfit).toMatchObject({ status: 'unfit' });
    expect(lines.at(-1)).toMatch(/no CA key .* they are used as they are/);
    expect(await ensureHostCredentials(input('host-none', { caKeyFile: null }))).toMatchObject({
      status: 'unfit',
      problem: expect.stringMatching(/^missing ca-cert.pem/),
    });
    expect(lines.at(-1)).toMatch(/fails until they are there/);
  });

  it('issues again once the CA changed (setup made a new one)', async () => {
    const old = await readFile(path.join(tlsDir, 'hosts', 'host-a', 'server-cert.pem'));
    await makeCa(tlsDir, 'test CA two');
    expect(await ensureHostCredentials(input('host-a'))).toEqual({ status: 'issued' });
    expect(lines.at(-1)).toMatch(/its ca-cert.pem is not/);
    const renewed = await readFile(path.join(tlsDir, 'hosts', 'host-a', 'server-cert.pem'));
    expect(renewed.equals(old)).toBe(false);
  });

  it('signs a certificate for any name into a directory of its own (an intruder of the same CA)', async () => {
    const dir = path.join(root, 'intruder');
    await mkdir(dir);
    await issueHostCredentials({
      dir,
      caCertFile: path.join(tlsDir, 'ca-cert.pem'),
      caKeyFile: path.join(tlsDir, 'ca-key.pem'),
      hostName: 'intruder',
      dn: 'CN=intruder',
      addresses: [],
    });
    const cert = new X509Certificate(await readFile(path.join(dir, 'client-cert.pem')));
    expect(cert.subject).toBe('CN=intruder');
  });
});
