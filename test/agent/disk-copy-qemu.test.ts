import { execFile } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { processAlive } from '../../agent/proc-stat.ts';
import type { AgentError, DiskCopyStatus, DiskExportResult, GuestSpec } from '../../domain/agent-contract.ts';
import { call, eventually, ok } from './agent-client.ts';
import { agentFactory } from './agents.ts';
import type { ContractAgent } from './contract.ts';
import { testSpec } from './specs.ts';

// Cold disk copies with qemu-nbd and qemu-img only: no guest boots here.
const run = promisify(execFile);
const factory = await agentFactory('qemu');
afterAll(factory.cleanup);

const MIB = 1024 * 1024;
const guestDir = (agent: ContractAgent, id: string) => path.join(agent.dir, 'guests', id);
const image = (agent: ContractAgent, id: string) => path.join(guestDir(agent, id), 'disks', 'data.qcow2');
const exportPid = async (agent: ContractAgent, id: string) =>
  (
    JSON.parse(await readFile(path.join(guestDir(agent, id), 'disk-copy', 'data.export.json'), 'utf8')) as {
      pid: number;
    }
  ).pid;

function localSpec(): GuestSpec {
  return testSpec({ disks: [{ id: 'data', sizeMb: 16, storage: 'local', cache: 'none' }] });
}

async function imported(agent: ContractAgent, id: string): Promise<DiskCopyStatus> {
  return eventually(
    'the import to end',
    async () => {
      const status = await ok<DiskCopyStatus>(agent, 'GET', `/v1/guests/${id}/disks/data/import`);
      return status.status === 'copying' ? undefined : status;
    },
    30_000,
    50,
  );
}

async function sameData(a: string, b: string): Promise<boolean> {
  return run('qemu-img', ['compare', '-f', 'qcow2', '-F', 'qcow2', a, b]).then(
    () => true,
    () => false,
  );
}

describe('qemu driver: cold disk copy', () => {
  it('refuses an import from an export that is gone; fails one whose export dies, keeping the image; a retry from a live export copies', async () => {
    const [a, b] = await Promise.all([factory.makeAgent('fail-a'), factory.makeAgent('fail-b')]);
    try {
      const spec = localSpec();
      await ok(a, 'PUT', `/v1/guests/${spec.id}`, spec);
      await run('qemu-io', ['-f', 'qcow2', '-c', 'write -P 0x77 0 8M', image(a, spec.id)]);
      await ok(b, 'PUT', `/v1/guests/${spec.id}`, spec);
      await run('qemu-io', ['-f', 'qcow2', '-c', 'write -P 0x11 0 1M', image(b, spec.id)]);
      const before = await readFile(image(b, spec.id));

      const { nbdUri } = await ok<DiskExportResult>(a, 'POST', `/v1/guests/${spec.id}/disks/data/export`, {});
      expect(await ok(a, 'DELETE', `/v1/guests/${spec.id}/disks/data/export`)).toEqual({ stopped: true });
      // The source no longer exports the disk there: nothing starts.
      const gone = await call<AgentError>(b, 'POST', `/v1/guests/${spec.id}/disks/data/import`, { nbdUri });
      expect(gone.status).toBe(400);
      expect(gone.body.error).toMatchObject({ code: 'not_prepared', field: 'nbdUri' });
      expect((await call(b, 'GET', `/v1/guests/${spec.id}/disks/data/import`)).status).toBe(404);

      // An export that dies under the copy: qemu-nbd stopped before the import (its agent still confirms
      // it, qemu-img's connection waits in its backlog), then killed.
      const dying = await ok<DiskExportResult>(a, 'POST', `/v1/guests/${spec.id}/disks/data/export`, {});
      const dyingPid = await exportPid(a, spec.id);
      process.kill(dyingPid, 'SIGSTOP');
      await ok(b, 'POST', `/v1/guests/${spec.id}/disks/data/import`, dying);
      process.kill(dyingPid, 'SIGKILL');
      const failed = await imported(b, spec.id);
      expect(failed.status).toBe('failed');
      expect(failed.error).toMatch(/qemu-img convert failed/);
      // The half copy never replaced the image, and is gone.
      expect((await readFile(image(b, spec.id))).equals(before)).toBe(true);
      await expect(readFile(`${image(b, spec.id)}.importing`)).rejects.toThrow(/ENOENT/);

      // A failed import starts again from the same uri once the export runs (a new port: a new uri).
      const again = await ok<DiskExportResult>(a, 'POST', `/v1/guests/${spec.id}/disks/data/export`, {});
      await ok(b, 'POST', `/v1/guests/${spec.id}/disks/data/import`, again);
      const done = await imported(b, spec.id);
      expect(done.status, done.error ?? '').toBe('completed');
      expect(done.copiedBytes).toBe(16 * MIB);
      expect(await sameData(image(a, spec.id), image(b, spec.id))).toBe(true);

      // Destroying the source guest stops its export.
      const pid = await exportPid(a, spec.id);
      expect(await processAlive(pid)).toBe(true);
      expect(await ok(a, 'DELETE', `/v1/guests/${spec.id}`)).toEqual({ destroyed: true });
      expect(await processAlive(pid)).toBe(false);
    } finally {
      await Promise.all([a.stop(), b.stop()]);
    }
  });

  it('keeps an export across an agent upgrade (same uri), stops it on a plain agent stop, drops a half import', async () => {
    let a = await factory.makeAgent('restart-a');
    const b = await factory.makeAgent('restart-b');
    try {
      const spec = localSpec();
      await ok(a, 'PUT', `/v1/guests/${spec.id}`, spec);
      await run('qemu-io', ['-f', 'qcow2', '-c', 'write -P 0x42 2M 4M', image(a, spec.id)]);
      const first = await ok<DiskExportResult>(a, 'POST', `/v1/guests/${spec.id}/disks/data/export`, {});
      const pid = await exportPid(a, spec.id);
      // A half import a dead agent left on this host: its partial file goes at the next start.
      await writeFile(`${image(a, spec.id)}.importing`, 'partial');

      await a.stop({ leaveGuests: true });
      expect(await processAlive(pid)).toBe(true);
      a = await factory.makeAgent('restart-a');
      await expect(readFile(`${image(a, spec.id)}.importing`)).rejects.toThrow(/ENOENT/);
      expect(await ok<DiskExportResult>(a, 'POST', `/v1/guests/${spec.id}/disks/data/export`, {})).toEqual(
        first,
      );

      await ok(b, 'PUT', `/v1/guests/${spec.id}`, spec);
      await ok(b, 'POST', `/v1/guests/${spec.id}/disks/data/import`, first);
      expect((await imported(b, spec.id)).status).toBe('completed');
      expect(await sameData(image(a, spec.id), image(b, spec.id))).toBe(true);

      await a.stop();
      expect(await processAlive(pid)).toBe(false);
      // A restarted agent knows no import: the caller imports again.
      await b.stop({ leaveGuests: true });
      const b2 = await factory.makeAgent('restart-b');
      const reply = await fetch(`${b2.url}/v1/guests/${spec.id}/disks/data/import`, {
        headers: { authorization: `Bearer ${b2.token}` },
      });
      expect(reply.status).toBe(404);
      expect(((await reply.json()) as { error: { code: string } }).error.code).toBe('import_not_found');
      await b2.stop();
    } finally {
      await Promise.all([a.stop(), b.stop()]);
    }
  });
});
