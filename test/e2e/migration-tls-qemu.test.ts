import { execFile } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { QemuDriver } from '../../agent/drivers/qemu.ts';
import { hostTlsDir } from '../../agent/drivers/qemu-tls.ts';
import { defaultTlsDir } from '../../agent/settings.ts';
import { issueHostCredentials } from '../../agent/tls-issue.ts';
import type {
  DiskCopyStatus,
  DiskExportResult,
  GuestSpec,
  GuestState,
  MigrationStatus,
  PrepareIncomingResult,
} from '../../domain/agent-contract.ts';
import { eventually, ok } from '../agent/agent-client.ts';
import { agentFactory } from '../agent/agents.ts';
import type { ContractAgent } from '../agent/contract.ts';
import { testSpec } from '../agent/specs.ts';
import { startMiniStack, type MiniStack } from '../helpers/mini-stack.ts';
import {
  createRunningServer,
  migrateToEnd,
  waitForMigrationEnd,
  type ServerBody,
} from '../helpers/migrations.ts';
import { waitFor } from '../helpers/wait.ts';

/**
 * Migration TLS on real QEMU: every host has its own certificate from the dev CA (issued by its agent at
 * start), the destination admits only the source host's certificate, and an NBD export only the importing
 * host's. Foreign clients — plain TCP, or TLS with another certificate of the same CA — are refused at the
 * handshake and the listener goes on waiting for the real peer.
 */
const run = promisify(execFile);
const SRC = 'tls-src';
const DST = 'tls-dst';
const tlsDir = defaultTlsDir(process.env);

async function heartbeatAdvancing(agent: ContractAgent, id: string): Promise<void> {
  const first = await eventually(
    `a heartbeat of ${id}`,
    async () => (await ok<GuestState>(agent, 'GET', `/v1/guests/${id}`)).heartbeat ?? undefined,
    60_000,
  );
  await eventually(
    `the heartbeat of ${id} to advance`,
    async () => {
      const beat = (await ok<GuestState>(agent, 'GET', `/v1/guests/${id}`)).heartbeat;
      return beat !== null && beat.counter > first.counter ? true : undefined;
    },
    60_000,
  );
}

/** Creates and starts the guest on `agent`, and waits for its heartbeat to advance. */
async function startedGuest(agent: ContractAgent, spec: GuestSpec): Promise<void> {
  await ok(agent, 'PUT', `/v1/guests/${spec.id}`, spec);
  await ok(agent, 'POST', `/v1/guests/${spec.id}/start`);
  await heartbeatAdvancing(agent, spec.id);
}

/** Prepares `agent` (the destination) for an incoming TLS migration of `spec` from the SRC host. */
function prepareTlsIncoming(agent: ContractAgent, spec: GuestSpec, migrationId: string) {
  return ok<PrepareIncomingResult>(agent, 'POST', `/v1/guests/${spec.id}/prepare-incoming`, {
    migrationId,
    spec,
    listenAddress: '127.0.0.1',
    tls: true,
    sourceHost: SRC,
  });
}

/** Waits for the migration of guest `id` from `agent` to end however it ends (`what` names the wait). */
function migrationEnd(agent: ContractAgent, id: string, what: string, timeoutMs: number) {
  return eventually(
    what,
    async () => {
      const status = await ok<MigrationStatus>(agent, 'GET', `/v1/guests/${id}/migration`);
      return ['completed', 'failed', 'cancelled'].includes(status.status) ? status : undefined;
    },
    timeoutMs,
  );
}

/** A plain TCP client that sends what a plain migration stream starts with, then waits to be dropped. */
/**
 * Nothing listens on the port: a connection is refused. Asked again for a while, because a refused
 * connection once came back as a reset right after the listener's process had exited.
 */
async function refusedOn(port: number): Promise<string> {
  let answer = '';
  await waitFor(
    `port ${port} to refuse connections`,
    async () => {
      answer = await plainIntruder(port);
      return /ECONNREFUSED/.test(answer) ? true : null;
    },
    { timeoutMs: 5_000, intervalMs: 100 },
  ).catch(() => undefined);
  return answer;
}

function plainIntruder(port: number): Promise<string> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port }, () => {
      socket.write(Buffer.from('QEVM\u0000\u0000\u0000\u0003', 'latin1'));
    });
    socket.setTimeout(10_000, () => socket.destroy(new Error('still connected after 10 s')));
    socket.on('error', (error) => resolve(`error: ${error.message}`));
    socket.on('close', () => resolve('closed'));
  });
}

/** A TLS client with a certificate of the same CA for another name. */
function tlsIntruder(port: number, dir: string): Promise<{ handshake: boolean; ended: string }> {
  return new Promise((resolve, reject) => {
    Promise.all(['ca-cert.pem', 'client-cert.pem', 'client-key.pem'].map((f) => readFile(path.join(dir, f))))
      .then(([ca, cert, key]) => {
        let handshake = false;
        const socket = tls.connect({
          host: '127.0.0.1',
          port,
          ca,
          cert,
          key,
          checkServerIdentity: () => undefined,
        });
        socket.on('secureConnect', () => {
          handshake = true;
          socket.write(Buffer.from('QEVM\u0000\u0000\u0000\u0003', 'latin1'));
        });
        socket.setTimeout(10_000, () => socket.destroy(new Error('still connected after 10 s')));
        socket.on('error', (error) => resolve({ handshake, ended: `error: ${error.message}` }));
        socket.on('close', () => resolve({ handshake, ended: 'closed' }));
      })
      .catch(reject);
  });
}

const portOf = (uri: string) => Number(/:(\d+)(?:\/|$)/.exec(uri)![1]);

describe('migration TLS between hosts with their own certificates (real QEMU)', () => {
  const factoryReady = agentFactory('qemu', { guestImageDir: inject('guestImageDir') });
  let factory: Awaited<typeof factoryReady>;
  let src: ContractAgent;
  let dst: ContractAgent;
  let root: string;
  let intruderDir: string;

  beforeAll(async () => {
    factory = await factoryReady;
    [src, dst] = await Promise.all([factory.makeAgent(SRC), factory.makeAgent(DST)]);
    root = await mkdtemp(path.join(os.tmpdir(), 'vmmig-tls-e2e-'));
    intruderDir = path.join(root, 'intruder');
    await mkdir(intruderDir);
    // Signed by the very CA the hosts use, for a name no host has.
    await issueHostCredentials({
      dir: intruderDir,
      caCertFile: path.join(tlsDir, 'ca-cert.pem'),
      caKeyFile: path.join(tlsDir, 'ca-key.pem'),
      hostName: 'intruder',
      dn: 'CN=intruder',
      addresses: ['127.0.0.1'],
    });
  });
  afterAll(async () => {
    await Promise.allSettled([src?.stop(), dst?.stop()]);
    await factory?.cleanup();
    if (root) await rm(root, { recursive: true, force: true });
  });

  it('gives each host a certificate of its own name from the dev CA', async () => {
    const ca = new X509Certificate(await readFile(path.join(tlsDir, 'ca-cert.pem')));
    for (const name of [SRC, DST]) {
      for (const role of ['server', 'client']) {
        const cert = new X509Certificate(
          await readFile(path.join(hostTlsDir(tlsDir, name), `${role}-cert.pem`)),
        );
        expect(cert.subject).toBe(`CN=${name}`);
        expect(cert.subjectAltName).toContain(`DNS:${name}`);
        expect(cert.subjectAltName).toContain('IP Address:127.0.0.1');
        expect(cert.checkIssued(ca)).toBe(true);
      }
    }
    expect((await ok<{ tlsReady: boolean }>(src, 'GET', '/v1/facts')).tlsReady).toBe(true);
  });

  it('refuses plain TCP and a foreign certificate on the incoming port; the real source migrates after', async () => {
    const spec = testSpec({ memoryMb: 128, dirtyRateMibs: 1 });
    await startedGuest(src, spec);
    const migrationId = `m-tls-${Date.now()}`;
    const incoming = await prepareTlsIncoming(dst, spec, migrationId);
    expect(incoming.uri).toMatch(/^tcp:127\.0\.0\.1:\d+$/);
    const port = portOf(incoming.uri);
    const qemuLog = path.join(dst.dir, 'guests', spec.id, 'qemu.log');

    expect(await plainIntruder(port)).toMatch(/closed|ECONNRESET/);
    const foreign = await tlsIntruder(port, intruderDir);
    expect(foreign.ended).toMatch(/closed|ECONNRESET|alert/);
    // The host's own destination certificate is of the CA too, and still not the source's.
    const sibling = await tlsIntruder(port, hostTlsDir(tlsDir, DST));
    expect(sibling.ended).toMatch(/closed|ECONNRESET|alert/);
    await waitFor('QEMU to log the refusals', async () => {
      const log = await readFile(qemuLog, 'utf8').catch(() => '');
      return /TLS handshake failed/.test(log) &&
        /authz check for CN=intruder is denied/.test(log) &&
        new RegExp(`authz check for CN=${DST} is denied`).test(log)
        ? true
        : null;
    });

    // Unharmed: still waiting, still on the same port.
    expect((await ok<GuestState>(dst, 'GET', `/v1/guests/${spec.id}`)).status).toBe('incoming');
    const destination = dst.driver as QemuDriver;
    const parameters = await destination.humanMonitorCommand(spec.id, 'info migrate_parameters');
    expect(parameters).toMatch(/tls-creds: '?vmmig-tls-server/);
    expect(parameters).toMatch(/tls-authz: '?vmmig-tls-peer/);
    expect(
      await destination.humanMonitorCommand(spec.id, 'qom-get /objects/vmmig-tls-peer identity'),
    ).toContain(`CN=${SRC}`);

    // The source checks the destination's name in its certificate, and is admitted.
    await ok(src, 'POST', `/v1/guests/${spec.id}/migration`, {
      migrationId,
      uri: incoming.uri,
      tls: true,
      tlsHostname: DST,
    });
    const final = await migrationEnd(src, spec.id, 'the migration to end', 60_000);
    expect(final.status, final.errorDesc ?? '').toBe('completed');
    expect(final.tls).toBe(true);
    await eventually(
      'the guest to run on the destination',
      async () =>
        (await ok<GuestState>(dst, 'GET', `/v1/guests/${spec.id}`)).status === 'running' ? true : undefined,
      30_000,
    );
    await heartbeatAdvancing(dst, spec.id);
    // One migration: the listener is gone once it completed.
    expect(await refusedOn(port)).toMatch(/ECONNREFUSED/);
    await ok(src, 'POST', `/v1/guests/${spec.id}/cleanup`, { migrationId, role: 'source' });
    await ok(dst, 'DELETE', `/v1/guests/${spec.id}`);
  });

  it("refuses foreign clients on a block migration's NBD server; the source's mirrors get through", async () => {
    const spec = testSpec({
      memoryMb: 128,
      disks: [{ id: 'data', sizeMb: 16, storage: 'local', cache: 'none' }],
    });
    await startedGuest(src, spec);
    const migrationId = `m-tls-block-${Date.now()}`;
    const incoming = await prepareTlsIncoming(dst, spec, migrationId);
    expect(incoming.nbdUri).toMatch(/^nbd:127\.0\.0\.1:\d+$/);
    const port = Number(incoming.nbdUri!.split(':').at(-1));
    const info = (args: string[]) =>
      run('qemu-img', ['info', ...args]).then(
        () => 'admitted',
        (error: { stderr?: string }) => `refused: ${error.stderr ?? ''}`,
      );
    const opts = (dir: string) => [
      '--object',
      `tls-creds-x509,id=c,dir=${dir},endpoint=client`,
      '--image-opts',
      `driver=nbd,server.type=inet,server.host=127.0.0.1,server.port=${port},export=data,tls-creds=c,tls-hostname=${DST}`,
    ];
    expect(await info([`nbd://127.0.0.1:${port}/data`])).toMatch(/^refused: .*TLS/s);
    expect(await info(opts(intruderDir))).toMatch(/^refused/);
    expect(await readFile(path.join(dst.dir, 'guests', spec.id, 'qemu.log'), 'utf8')).toMatch(
      /authz check for CN=intruder is denied/,
    );
    expect((await ok<GuestState>(dst, 'GET', `/v1/guests/${spec.id}`)).status).toBe('incoming');

    await ok(src, 'POST', `/v1/guests/${spec.id}/migration`, {
      migrationId,
      uri: incoming.uri,
      nbdUri: incoming.nbdUri,
      tls: true,
      tlsHostname: DST,
    });
    const final = await migrationEnd(src, spec.id, 'the block migration to end', 90_000);
    expect(final.status, final.errorDesc ?? '').toBe('completed');
    await heartbeatAdvancing(dst, spec.id);
    await ok(src, 'POST', `/v1/guests/${spec.id}/cleanup`, { migrationId, role: 'source' });
    await ok(dst, 'DELETE', `/v1/guests/${spec.id}`);
  });

  it('serves a cold copy over TLS to the importing host only, and stops serving once told', async () => {
    const spec: GuestSpec = testSpec({
      disks: [{ id: 'data', sizeMb: 16, storage: 'local', cache: 'none' }],
    });
    const image = (agent: ContractAgent) => path.join(agent.dir, 'guests', spec.id, 'disks', 'data.qcow2');
    await ok(src, 'PUT', `/v1/guests/${spec.id}`, spec);
    await run('qemu-io', ['-f', 'qcow2', '-c', 'write -P 0x5c 0 4M', image(src)]);
    await ok(dst, 'PUT', `/v1/guests/${spec.id}`, spec);

    const { nbdUri } = await ok<DiskExportResult>(src, 'POST', `/v1/guests/${spec.id}/disks/data/export`, {
      tls: true,
      destinationHost: DST,
    });
    expect(nbdUri).toMatch(/^nbd:\/\/127\.0\.0\.1:\d+\/data$/);
    const port = portOf(nbdUri);
    const nbdOpts = (creds: string, hostname: string) =>
      `driver=nbd,server.type=inet,server.host=127.0.0.1,server.port=${port},export=data,tls-creds=${creds},tls-hostname=${hostname}`;
    const info = (args: string[]) =>
      run('qemu-img', ['info', ...args]).then(
        ({ stdout }) => `ok: ${stdout}`,
        (error: { stderr?: string }) => `refused: ${error.stderr ?? ''}`,
      );

    // Plain NBD: the export insists on TLS.
    expect(await info([nbdUri])).toMatch(/^refused: .*TLS/s);
    // Same CA, another name: refused by the export's authz.
    expect(
      await info([
        '--object',
        `tls-creds-x509,id=c,dir=${intruderDir},endpoint=client`,
        '--image-opts',
        nbdOpts('c', SRC),
      ]),
    ).toMatch(/^refused/);
    // The real destination checks the source's name: a wrong one is refused on its side.
    expect(
      await info([
        '--object',
        `tls-creds-x509,id=c,dir=${hostTlsDir(tlsDir, DST)},endpoint=client`,
        '--image-opts',
        nbdOpts('c', 'not-the-source'),
      ]),
    ).toMatch(/refused: .*does not match the hostname not-the-source/s);
    const exportLog = await readFile(
      path.join(src.dir, 'guests', spec.id, 'disk-copy', 'data.export.log'),
      'utf8',
    );
    expect(exportLog).toMatch(/authz check for CN=intruder is denied/);

    // The destination itself reads it.
    await ok(dst, 'POST', `/v1/guests/${spec.id}/disks/data/import`, { nbdUri, tls: true, tlsHostname: SRC });
    const done = await eventually(
      'the import to end',
      async () => {
        const status = await ok<DiskCopyStatus>(dst, 'GET', `/v1/guests/${spec.id}/disks/data/import`);
        return status.status === 'copying' ? undefined : status;
      },
      30_000,
      50,
    );
    expect(done.status, done.error ?? '').toBe('completed');
    await run('qemu-img', ['compare', '-f', 'qcow2', '-F', 'qcow2', image(src), image(dst)]);

    // One copy: once stopped nothing listens there any more.
    expect(await ok(src, 'DELETE', `/v1/guests/${spec.id}/disks/data/export`)).toEqual({ stopped: true });
    expect(await refusedOn(port)).toMatch(/ECONNREFUSED/);
    await ok(src, 'DELETE', `/v1/guests/${spec.id}`);
    await ok(dst, 'DELETE', `/v1/guests/${spec.id}`);
  });
});

describe('migration TLS by default through the API (real QEMU)', () => {
  let stack: MiniStack;

  beforeAll(async () => {
    stack = await startMiniStack({
      hosts: [
        { name: 'tq1', driver: 'qemu' },
        { name: 'tq2', driver: 'qemu' },
      ],
    });
  });
  afterAll(async () => stack?.stop());

  const server = async (name: string) => (await stack.api<ServerBody>('GET', `/v1/servers/${name}`)).body;

  it('live-migrates over TLS without being asked, the destination admitting only the source', async () => {
    const vm = await createRunningServer(stack, {
      name: 'tlsdef',
      host: 'tq1',
      memoryMb: 256,
      dirtyRateMibs: 1,
    });
    const done = await migrateToEnd(stack, 'tlsdef', { prefer_host: 'tq2' }, 120_000);
    expect(done.phase, done.error ?? '').toBe('completed');
    const copy = done.events.find((e) => e.type === 'copy_started');
    expect(copy?.data.tls).toBe(true);
    expect(copy?.message).toMatch(/over TLS/);
    const row = await stack.api<{ resolvedPolicy: { plan: { tls: boolean }; settings: { tls: boolean } } }>(
      'GET',
      `/v1/migrations/${done.id}`,
    );
    expect(row.body.resolvedPolicy.plan.tls).toBe(true);
    const destination = stack.agents.get('tq2')!.driver as QemuDriver;
    expect(await destination.humanMonitorCommand(vm.id, 'info migrate_parameters')).toMatch(
      /tls-authz: '?vmmig-tls-peer/,
    );
    expect(
      await destination.humanMonitorCommand(vm.id, 'qom-get /objects/vmmig-tls-peer identity'),
    ).toContain('CN=tq1');
    await waitFor('a heartbeat on tq2', async () => {
      const after = await server('tlsdef');
      return after.host.name === 'tq2' && (after.live?.heartbeat?.counter ?? 0) > 0 ? true : null;
    });
  });

  it('copies a stopped guest’s local disk over TLS by default', async () => {
    await createRunningServer(stack, {
      name: 'tlscold',
      host: 'tq1',
      memoryMb: 128,
      disks: [{ id: 'root', sizeMb: 16, storage: 'local', cache: 'none' }],
    });
    expect((await stack.api('POST', '/v1/servers/tlscold/stop')).status).toBe(202);
    await waitFor('tlscold ready', async () => ((await server('tlscold')).status === 'ready' ? true : null));
    const started = await stack.api<{ id: string }>('POST', '/v1/servers/tlscold/migrate', {
      prefer_host: 'tq2',
    });
    expect(started.status, JSON.stringify(started.body)).toBe(202);
    const done = await waitForMigrationEnd(stack, started.body.id, 120_000);
    expect(done.phase, done.error ?? '').toBe('completed');
    const copied = done.events.find((e) => e.type === 'disk_copied');
    expect(copied?.data.tls).toBe(true);
    expect((await server('tlscold')).host.name).toBe('tq2');
  });
});
