import { spawnSync } from 'node:child_process';
import os from 'node:os';
import { repoRoot } from '../../scripts/services/repo-root.ts';

/** The commit measured, and whether the work tree differed from it (others edit the repo meanwhile). */
export function revisionLine(): string {
  const git = (...args: string[]) => spawnSync('git', args, { cwd: repoRoot, encoding: 'utf8' }).stdout ?? '';
  const head = git('log', '-1', '--format=%h %s').trim().slice(0, 80);
  const dirty = git('status', '--porcelain', '--untracked-files=no')
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => line.slice(3));
  return `${head || 'unknown'}${dirty.length > 0 ? ` + uncommitted changes in ${dirty.join(', ')}` : ''}`;
}

/**
 * CPUs, memory, kernel and Node of this machine; with `qemu` (a note after its version, '' for none) also
 * the QEMU the benchmark runs, left out for benchmarks that run none.
 */
export function machineLine(qemu: string | null): string {
  const cpus = os.cpus();
  const version = () =>
    spawnSync('qemu-system-x86_64', ['--version'], { encoding: 'utf8' }).stdout?.split('\n')[0] || 'QEMU ?';
  return (
    `${cpus.length} x ${cpus[0]?.model ?? 'unknown CPU'}, ${(os.totalmem() / 2 ** 30).toFixed(1)} GiB RAM, ` +
    `Linux ${os.release()}, ${qemu === null ? '' : `${version()}${qemu}, `}Node ${process.version}`
  );
}
