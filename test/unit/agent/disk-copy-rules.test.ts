import { describe, expect, it } from 'vitest';
import { lastProgress, nbdExportUri, parseNbdExportUri } from '../../../agent/drivers/qemu-disk-copy.ts';
import { defaultSimProfile, parseSimExportUri, SimDriver, simExportUri } from '../../../agent/drivers/sim.ts';
import { AgentFailure } from '../../../agent/errors.ts';
import {
  assertDiskQuiet,
  assertNoDiskCopy,
  assertNotExported,
  assertNotImporting,
  decideExport,
  decideImport,
  localDiskOf,
} from '../../../agent/guest-rules.ts';
import { testSpec } from '../../agent/specs.ts';

function failure(run: () => unknown): AgentFailure {
  try {
    run();
  } catch (error) {
    if (error instanceof AgentFailure) return error;
    throw error;
  }
  throw new Error('expected an AgentFailure');
}

describe('cold disk copy rules', () => {
  const spec = testSpec({
    disks: [
      { id: 'root', sizeMb: 16, storage: 'shared', cache: 'none' },
      { id: 'data', sizeMb: 64, storage: 'local', cache: 'none' },
    ],
  });

  it('copies only local disks of the guest, naming the disk it refuses', () => {
    expect(localDiskOf(spec, 'data').sizeMb).toBe(64);
    const missing = failure(() => localDiskOf(spec, 'nope'));
    expect([missing.status, missing.code, missing.field]).toEqual([404, 'disk_not_found', 'diskId']);
    expect(missing.message).toContain("'nope'");
    const shared = failure(() => localDiskOf(spec, 'root'));
    expect([shared.status, shared.code]).toEqual([409, 'disk_not_local']);
  });

  it('refuses to export or import under a QEMU of the guest', () => {
    expect(() => assertDiskQuiet('g', 'data', 'stopped', false, 'export')).not.toThrow();
    expect(() => assertDiskQuiet('g', 'data', 'crashed', false, 'import')).not.toThrow();
    for (const state of ['running', 'paused', 'incoming'] as const) {
      const refused = failure(() => assertDiskQuiet('g', 'data', state, true, 'export'));
      expect([refused.status, refused.code]).toEqual([409, 'guest_not_stopped']);
      expect(refused.message).toContain(state);
    }
    expect(failure(() => assertDiskQuiet('g', 'data', 'running', true, 'import')).message).toMatch(
      /cannot be replaced/,
    );
  });

  it('keeps start, export and import apart while a copy runs', () => {
    const idle = { exported: [], importing: [] };
    expect(() => assertNoDiskCopy('g', idle)).not.toThrow();
    expect(failure(() => assertNoDiskCopy('g', { exported: ['data'], importing: [] })).code).toBe(
      'disk_exported',
    );
    expect(failure(() => assertNoDiskCopy('g', { exported: [], importing: ['data'] })).code).toBe(
      'disk_import_in_progress',
    );
    expect(failure(() => assertNotImporting('g', 'data', { exported: [], importing: ['data'] })).code).toBe(
      'disk_import_in_progress',
    );
    expect(() => assertNotImporting('g', 'other', { exported: [], importing: ['data'] })).not.toThrow();
    expect(failure(() => assertNotExported('g', 'data', { exported: ['data'], importing: [] })).code).toBe(
      'disk_exported',
    );
  });

  it('answers a retried export or import with what runs, and starts again what failed or changed', () => {
    expect(decideExport(null, '10.0.0.1')).toBe('start');
    expect(decideExport({ listenAddress: '10.0.0.1' }, '10.0.0.1')).toBe('current');
    expect(failure(() => decideExport({ listenAddress: '10.0.0.1' }, '10.0.0.2')).code).toBe(
      'export_conflict',
    );

    const uri = 'nbd://10.0.0.1:4000/data';
    expect(decideImport(null, uri)).toBe('start');
    expect(decideImport({ status: 'copying', nbdUri: uri }, uri)).toBe('current');
    expect(decideImport({ status: 'completed', nbdUri: uri }, uri)).toBe('current');
    expect(decideImport({ status: 'failed', nbdUri: uri }, uri)).toBe('start');
    expect(decideImport({ status: 'copying', nbdUri: uri }, 'nbd://10.0.0.1:4001/data')).toBe('start');
  });

  it('reads qemu-img progress and NBD export uris', () => {
    expect(lastProgress('    (0.00/100%)\r    (12.50/100%)\r    (37.01/100%)\r')).toBeCloseTo(0.3701);
    expect(lastProgress('    (100.00/100%)\r\n')).toBe(1);
    expect(lastProgress('nothing')).toBeNull();

    expect(nbdExportUri('10.0.0.1', 4000, 'data')).toBe('nbd://10.0.0.1:4000/data');
    expect(nbdExportUri('fd00::1', 4000, 'data')).toBe('nbd://[fd00::1]:4000/data');
    expect(parseNbdExportUri('nbd://[fd00::1]:4000/data')).toEqual({
      host: 'fd00::1',
      port: 4000,
      exportName: 'data',
    });
    for (const bad of ['nbd:10.0.0.1:4000', 'nbd://10.0.0.1:0/data', 'json:{"driver":"file"}', 'file:///x']) {
      expect(parseNbdExportUri(bad), bad).toBeNull();
    }

    const sim = simExportUri('http://127.0.0.1:9101', 'g-1', 'data');
    expect(sim).toBe('sim+nbd://127.0.0.1:9101/g-1/data');
    expect(parseSimExportUri(sim)).toEqual({ agentHost: '127.0.0.1:9101', guestId: 'g-1', diskId: 'data' });
    expect(parseSimExportUri('nbd://127.0.0.1:9101/data')).toBeNull();
  });
});

describe('sim driver: a disk copy at the link speed, from elapsed time', () => {
  const MIB = 1024 * 1024;
  let nowMs = 1_000_000;
  const sim = (name: string) =>
    new SimDriver({
      identity: {
        hostId: `00000000-0000-4000-8000-00000000000${name === 'a' ? 1 : 2}`,
        name,
        agentUrl: `http://127.0.0.${name === 'a' ? 1 : 2}:9101`,
        address: '127.0.0.1',
        migrationAddress: null,
        networks: ['default'],
        sharedStoragePath: '/tmp/shared',
      },
      // 64 MiB at 16 MiB/s: 4 s.
      profile: { ...defaultSimProfile, linkBytesPerSec: 16 * MIB },
      log: () => {},
      peerCredential: 'unused: the agents are in-process',
      now: () => nowMs,
    });

  it('copies sizeMb × MiB in size / link speed, progress in between; a fenced host fails its copy', async () => {
    const [a, b] = [sim('a'), sim('b')];
    const spec = testSpec({ disks: [{ id: 'data', sizeMb: 64, storage: 'local', cache: 'none' }] });
    await a.defineGuest(spec);
    await b.defineGuest(spec);
    const { nbdUri } = await a.exportDisk(spec.id, 'data', {});
    expect(nbdUri).toBe(`sim+nbd://127.0.0.1:9101/${spec.id}/data`);
    // The route's confirmation (the source exports that disk there) runs only for a copy that starts.
    let confirmations = 0;
    const confirm = async () => {
      confirmations += 1;
    };
    const started = await b.importDisk(spec.id, 'data', { nbdUri }, confirm);
    expect(confirmations).toBe(1);
    expect(started).toMatchObject({ status: 'copying', copiedBytes: 0, totalBytes: 64 * MIB, error: null });
    nowMs += 1000;
    expect(await b.diskImportStatus(spec.id, 'data')).toMatchObject({
      status: 'copying',
      copiedBytes: 16 * MIB,
    });
    await expect(b.startGuest(spec.id)).rejects.toMatchObject({ code: 'disk_import_in_progress' });
    // The same uri again is the same copy.
    expect(await b.importDisk(spec.id, 'data', { nbdUri }, confirm)).toMatchObject({ copiedBytes: 16 * MIB });
    expect(confirmations).toBe(1);
    nowMs += 3000;
    const done = await b.diskImportStatus(spec.id, 'data');
    expect(done).toMatchObject({ status: 'completed', copiedBytes: 64 * MIB, totalBytes: 64 * MIB });
    expect(done.finishedAt! - done.startedAt!).toBe(4000);
    expect(await a.stopDiskExport(spec.id, 'data')).toEqual({ stopped: true });
    expect(await a.stopDiskExport(spec.id, 'data')).toEqual({ stopped: false });

    // Another uri starts again; a fence fails the copy where it stands.
    const other = `sim+nbd://127.0.0.3:9101/${spec.id}/data`;
    expect((await b.importDisk(spec.id, 'data', { nbdUri: other }, confirm)).status).toBe('copying');
    expect(confirmations).toBe(2);
    // A refused confirmation starts nothing: the copy in progress runs on.
    const refused = async () => {
      throw new Error('not confirmed');
    };
    await expect(
      b.importDisk(spec.id, 'data', { nbdUri: `sim+nbd://127.0.0.4:9101/${spec.id}/data` }, refused),
    ).rejects.toThrow('not confirmed');
    expect((await b.diskImportStatus(spec.id, 'data')).nbdUri).toBe(other);
    nowMs += 2000;
    await b.fence('test');
    nowMs += 5000;
    expect(await b.diskImportStatus(spec.id, 'data')).toMatchObject({
      status: 'failed',
      copiedBytes: 32 * MIB,
      error: 'destination host fenced itself: test',
    });
    await a.shutdown();
    await b.shutdown();
  });
});
