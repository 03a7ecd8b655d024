import { execFile } from 'node:child_process';
import { constants } from 'node:fs';
import { access, mkdir, open, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import type { CacheMode } from './qemu-command.ts';

const run = promisify(execFile);

export async function fileExists(file: string): Promise<boolean> {
  return access(file).then(
    () => true,
    () => false,
  );
}

/** Creates an empty qcow2 image unless one is there already (never overwrites guest data). */
export async function ensureQcow2(file: string, sizeMb: number, qemuImg = 'qemu-img'): Promise<boolean> {
  if (await fileExists(file)) return false;
  await mkdir(path.dirname(file), { recursive: true });
  const partial = `${file}.creating`;
  await run(qemuImg, ['create', '-q', '-f', 'qcow2', partial, `${sizeMb}M`]);
  await rename(partial, file);
  return true;
}

const directIoByDir = new Map<string, Promise<boolean>>();

/** Whether files in `dir` can be opened with O_DIRECT (tmpfs and some overlay setups cannot). */
export function supportsDirectIo(dir: string): Promise<boolean> {
  let known = directIoByDir.get(dir);
  if (known === undefined) {
    known = probeDirectIo(dir);
    directIoByDir.set(dir, known);
  }
  return known;
}

async function probeDirectIo(dir: string): Promise<boolean> {
  await mkdir(dir, { recursive: true });
  const probe = path.join(dir, `.o_direct-probe-${process.pid}`);
  try {
    const handle = await open(probe, constants.O_CREAT | constants.O_WRONLY | constants.O_DIRECT);
    await handle.close();
    return true;
  } catch {
    return false;
  } finally {
    await rm(probe, { force: true });
  }
}

/**
 * cache=none (and directsync) mean O_DIRECT, which QEMU cannot open on a filesystem without it. There
 * we fall back to writethrough: every write still reaches the file before it completes (no data loss
 * on a host crash), and source and destination on one machine share the page cache, so migration
 * stays coherent. Across machines that is not true: production shared storage must support O_DIRECT.
 */
export function cacheModeFor(
  requested: CacheMode,
  directIo: boolean,
): { cache: CacheMode; fellBack: boolean } {
  if ((requested === 'none' || requested === 'directsync') && !directIo)
    return { cache: 'writethrough', fellBack: true };
  return { cache: requested, fellBack: false };
}

export async function effectiveCacheMode(
  requested: CacheMode,
  dir: string,
): Promise<{ cache: CacheMode; fellBack: boolean }> {
  if (requested !== 'none' && requested !== 'directsync') return cacheModeFor(requested, true);
  return cacheModeFor(requested, await supportsDirectIo(dir));
}
