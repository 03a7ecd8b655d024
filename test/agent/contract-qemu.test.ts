import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, inject, it } from 'vitest';
import type { AgentError, HostFacts } from '../../domain/agent-contract.ts';
import type { QemuDriver } from '../../agent/drivers/qemu.ts';
import { call, eventually, ok } from './agent-client.ts';
import { agentFactory } from './agents.ts';
import {
  type ContractAgent,
  type DiskCopyHooks,
  type DiskHooks,
  type DiskWrite,
  driverContract,
} from './contract.ts';
import { testSpec } from './specs.ts';

// Real QEMU (TCG) guests booting the test image; the guest image dir comes from the global setup.
const { root, makeAgent, cleanup } = await agentFactory('qemu', {
  guestImageDir: inject('guestImageDir'),
  stopGraceMs: 3000,
});
afterAll(cleanup);

const serialLog = (agent: ContractAgent, guestId: string) =>
  readFile(path.join(agent.dir, 'guests', guestId, 'serial.log'), 'latin1');

/** The test guest reports a stale page ("DIRTIER CORRUPT") and the kernel its panics on the serial console. */
async function assertGuestIntact(agent: ContractAgent, guestId: string): Promise<void> {
  const log = await serialLog(agent, guestId);
  expect(log).toMatch(/^HB \d+/m);
  expect(log).not.toMatch(/Kernel panic|DIRTIER CORRUPT|DISK CORRUPT/);
}

const qemu = (agent: ContractAgent) => agent.driver as QemuDriver;

/** Generation `gen` of the guest disk test's pattern (agent/guest-image/init, disk_pattern). */
function diskPattern(gen: number): Buffer {
  const lines: string[] = [];
  for (let line = 0; line < 8192; line++) {
    lines.push(`vmmig-disk-${String(gen).padStart(8, '0')}-${String(line).padStart(11, '0')}\n`);
  }
  return Buffer.from(lines.join(''));
}
const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');

const diskHooks: DiskHooks = {
  // HMP qemu-io writes through the disk's block backend, as the guest would: the mirror must see it.
  async write(agent, guestId, diskId, write: DiskWrite) {
    const reply = await qemu(agent).humanMonitorCommand(
      guestId,
      `qemu-io drive-${diskId} "write -P 0x${write.byte.toString(16)} ${write.offset} ${write.length}"`,
    );
    expect(reply.trim()).toBe('');
  },
  async blockJobs(agent, guestId) {
    const text = await qemu(agent).humanMonitorCommand(guestId, 'info block-jobs');
    return /No active jobs/.test(text) ? 0 : text.trim().split('\n').length;
  },
  async verify(destination, source, guestId, diskId, writes) {
    const sourceLog = await serialLog(source, guestId);
    expect(sourceLog).not.toMatch(/DISK (CORRUPT|ERROR)/);
    // The guest writes its disk only if the image carries virtio_blk (see agent/README.md).
    const guestTest = /^DISK WROTE/m.test(sourceLog);
    let guestGens = new Set<number>();
    if (guestTest) {
      // The guest's own read-back on the destination: its checksums are the patterns it wrote.
      const reads = await eventually(
        'a DISK READ line of the guest on the destination',
        async () => {
          const found = [
            ...(await serialLog(destination, guestId)).matchAll(/^DISK READ gen=(\d+) sha256=(\w+) ok/gm),
          ];
          return found.length > 0 ? found : undefined;
        },
        20_000,
      );
      for (const [, gen, sum] of reads) expect(sum).toBe(sha256(diskPattern(Number(gen))));
      const wrote = (await serialLog(destination, guestId)) + sourceLog;
      guestGens = new Set([...wrote.matchAll(/^DISK WROTE gen=(\d+)/gm)].map((m) => Number(m[1])));
    } else {
      console.warn(
        `guest disk test did not run (${/DISK UNAVAILABLE.*/.exec(sourceLog)?.[0] ?? 'image without it'}): checking the disk from the host only`,
      );
    }
    expect(await serialLog(destination, guestId)).not.toMatch(/DISK (CORRUPT|ERROR)/);

    // The destination's image, read after its QEMU flushed and closed it.
    await ok(destination, 'POST', `/v1/guests/${guestId}/stop`);
    const image = path.join(destination.dir, 'guests', guestId, 'disks', `${diskId}.qcow2`);
    const raw = path.join(destination.dir, `${guestId}-${diskId}.raw`);
    await promisify(execFile)('qemu-img', ['convert', '-f', 'qcow2', '-O', 'raw', image, raw]);
    const data = await readFile(raw);
    await rm(raw, { force: true });
    const expected = Buffer.alloc(data.length);
    for (const w of writes) expected.fill(w.byte, w.offset, w.offset + w.length);
    const guestArea = diskPattern(0).length;
    expect(data.subarray(guestArea).equals(expected.subarray(guestArea)), 'host-written disk data').toBe(
      true,
    );
    const head = data.subarray(0, guestArea);
    if (guestTest) {
      const matches = [];
      for (const gen of guestGens) if (head.equals(diskPattern(gen))) matches.push(gen);
      expect(matches.length, 'the guest area holds one of the generations the guest wrote').toBe(1);
    } else {
      expect(head.equals(Buffer.alloc(guestArea))).toBe(true);
    }
  },
};

const run = promisify(execFile);
const localImage = (agent: ContractAgent, guestId: string, diskId: string) =>
  path.join(agent.dir, 'guests', guestId, 'disks', `${diskId}.qcow2`);

const diskCopyHooks: DiskCopyHooks = {
  // Most of the disk holds data (a copy must move it), patterns differ per region, the tail stays empty.
  async fill(agent, guestId, diskId) {
    const writes = [
      'write -P 0x5a 0 16M',
      'write -P 0xa5 16M 16M',
      'write -P 0x3c 32M 8M',
      'write -P 0xc3 48M 8M',
      'write -P 0x01 63M 512k',
    ];
    await run('qemu-io', [
      '-f',
      'qcow2',
      ...writes.flatMap((w) => ['-c', w]),
      localImage(agent, guestId, diskId),
    ]);
  },
  async compare(source, destination, guestId, diskId) {
    // Exit 0: the same guest-visible data (qemu-img compare exits 1 on a difference, 2+ on an error).
    const { stdout } = await run('qemu-img', [
      'compare',
      '-f',
      'qcow2',
      '-F',
      'qcow2',
      localImage(source, guestId, diskId),
      localImage(destination, guestId, diskId),
    ]);
    expect(stdout).toMatch(/Images are identical/);
    const { stdout: info } = await run('qemu-img', [
      'info',
      '--output=json',
      localImage(destination, guestId, diskId),
    ]);
    expect(JSON.parse(info)).toMatchObject({ format: 'qcow2', 'virtual-size': 64 * 1024 * 1024 });
  },
};

driverContract('qemu driver', makeAgent, {
  driver: 'qemu',
  heartbeatTimeoutMs: 30_000,
  migrationTimeoutMs: 90_000,
  assertGuestIntact,
  realTls: true,
  disk: diskHooks,
  diskCopy: diskCopyHooks,
  diskExportUri: /^nbd:\/\/127\.0\.0\.1:\d+\/data$/,
});

describe('qemu driver without TLS certificates', () => {
  it('reports tlsReady false and answers a TLS prepare-incoming with 409 tls_unavailable', async () => {
    const tlsDir = path.join(root, 'no-tls');
    await mkdir(tlsDir, { recursive: true });
    const factory = await agentFactory('qemu', { guestImageDir: inject('guestImageDir'), tlsDir });
    const agent = { factory, agent: await factory.makeAgent('host-no-tls') };
    try {
      expect((await ok<HostFacts>(agent.agent, 'GET', '/v1/facts')).tlsReady).toBe(false);
      const spec = testSpec();
      const reply = await call<AgentError>(agent.agent, 'POST', `/v1/guests/${spec.id}/prepare-incoming`, {
        migrationId: 'm-tls',
        spec,
        listenAddress: '127.0.0.1',
        tls: true,
      });
      expect(reply.status).toBe(409);
      expect(reply.body.error.code).toBe('tls_unavailable');
      expect(reply.body.error.field).toBe('tls');
      // Its own credentials, hosts/<name>/ under the TLS dir; with no CA key at hand none were issued.
      expect(reply.body.error.message).toContain(path.join(tlsDir, 'hosts', 'host-no-tls', 'ca-cert.pem'));
      expect((await call(agent.agent, 'GET', `/v1/guests/${spec.id}`)).status).toBe(404);
    } finally {
      await agent.agent.stop();
      await agent.factory.cleanup();
    }
  });
});
