import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { QemuDriver } from '../../agent/drivers/qemu.ts';
import { startMiniStack, type MiniStack } from '../helpers/mini-stack.ts';
import { migrateToEnd, agentGuest, createRunningServer, type ServerBody } from '../helpers/migrations.ts';
import { waitFor } from '../helpers/wait.ts';

const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');
const MiB = 1024 * 1024;

async function serialLog(stack: MiniStack, host: string, guestId: string): Promise<string> {
  return readFile(path.join(stack.dir, 'agents', host, 'guests', guestId, 'serial.log'), 'latin1').catch(
    () => '',
  );
}

describe('block migration and TLS through the API (real QEMU)', () => {
  let stack: MiniStack;

  beforeAll(async () => {
    stack = await startMiniStack({
      hosts: [
        { name: 'q1', driver: 'qemu' },
        { name: 'q2', driver: 'qemu' },
      ],
    });
  });
  afterAll(async () => stack?.stop());

  it('moves a local disk with the guest: data written before the move reads the same on the destination', async () => {
    const vm = await createRunningServer(stack, {
      name: 'blk',
      host: 'q1',
      memoryMb: 256,
      diskTest: true,
      disks: [{ id: 'disk0', sizeMb: 64, storage: 'local', cache: 'none' }],
    });
    // A known block of data, written through the guest's own disk backend so the mirror must carry it.
    const source = stack.agents.get('q1')!.driver as QemuDriver;
    const reply = await source.humanMonitorCommand(
      vm.id,
      `qemu-io drive-disk0 "write -P 0x5a ${4 * MiB} ${MiB}"`,
    );
    expect(reply.trim()).toBe('');
    const expected = sha256(Buffer.alloc(MiB, 0x5a));

    const done = await migrateToEnd(stack, 'blk', { prefer_host: 'q2' }, 180_000);
    expect(done.error).toBeNull();
    expect(done.phase).toBe('completed');
    expect((await stack.api<ServerBody>('GET', '/v1/servers/blk')).body.host.name).toBe('q2');

    // The guest's own disk check goes on at the destination without a lost write.
    const destinationLog = () => serialLog(stack, 'q2', vm.id);
    if (/^DISK WROTE/m.test(await serialLog(stack, 'q1', vm.id))) {
      await waitFor('a DISK READ ok on the destination', async () =>
        /^DISK READ .* ok/m.test(await destinationLog()),
      );
    }
    expect(await destinationLog()).not.toMatch(/DISK (CORRUPT|ERROR)|DIRTIER CORRUPT/);

    // Read the destination's disk image itself, after its QEMU closed it.
    const q2 = stack.agents.get('q2')!;
    await fetch(`${q2.url}/v1/guests/${vm.id}/stop`, {
      method: 'POST',
      headers: { authorization: `Bearer ${stack.agentCredential('q2')}` },
    });
    const image = path.join(stack.dir, 'agents', 'q2', 'guests', vm.id, 'disks', 'disk0.qcow2');
    const raw = path.join(stack.dir, 'blk-disk0.raw');
    await promisify(execFile)('qemu-img', ['convert', '-f', 'qcow2', '-O', 'raw', image, raw]);
    const data = await readFile(raw);
    await rm(raw, { force: true });
    expect(sha256(data.subarray(4 * MiB, 5 * MiB))).toBe(expected);
  });

  it('migrates over TLS when asked, and the guest goes on at the destination', async () => {
    const vm = await createRunningServer(stack, { name: 'tls', host: 'q1', memoryMb: 256, dirtyRateMibs: 1 });
    const done = await migrateToEnd(stack, 'tls', { prefer_host: 'q2', enable_tls: true }, 120_000);
    expect(done.error).toBeNull();
    expect(done.phase).toBe('completed');
    const copy = done.events.find((e) => e.type === 'copy_started');
    expect((copy?.data as { start?: unknown; uri?: string }).uri).toMatch(/^tcp:/);
    const row = await stack.api<{ resolvedPolicy: { plan: { tls: boolean } } }>(
      'GET',
      `/v1/migrations/${done.id}`,
    );
    expect(row.body.resolvedPolicy.plan.tls).toBe(true);
    await waitFor('heartbeat on the destination', async () => {
      const state = (await agentGuest(stack, 'q2', vm.id)).body as unknown as {
        heartbeat: { counter: number } | null;
      };
      return (state.heartbeat?.counter ?? 0) > 0;
    });
  });
});
