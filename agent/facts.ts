import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import os from 'node:os';
import { promisify } from 'node:util';

/** What the qemu driver reports about the real machine it runs on. */
export interface PlatformFacts {
  cpuModel: string;
  microcode: string;
  kernel: string;
  qemuVersion: string;
  cpus: number;
  memoryMb: number;
}

export interface PlatformOverrides {
  cpus?: number;
  memoryMb?: number;
  qemuBinary?: string;
}

/** First value of a `key : value` line in /proc/cpuinfo. */
export function cpuinfoField(cpuinfo: string, key: string): string | null {
  for (const line of cpuinfo.split('\n')) {
    const colon = line.indexOf(':');
    if (colon < 0) continue;
    if (line.slice(0, colon).trim() === key) return line.slice(colon + 1).trim();
  }
  return null;
}

/** "QEMU emulator version 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3)" -> "7.2.22" */
export function parseQemuVersion(output: string): string {
  return /version\s+(\d+\.\d+(?:\.\d+)?)/i.exec(output)?.[1] ?? 'unknown';
}

export async function readPlatformFacts(overrides: PlatformOverrides = {}): Promise<PlatformFacts> {
  const cpuinfo = await readFile('/proc/cpuinfo', 'utf8').catch(() => '');
  const qemuVersion = await promisify(execFile)(overrides.qemuBinary ?? 'qemu-system-x86_64', ['--version'])
    .then(({ stdout }) => parseQemuVersion(stdout))
    .catch(() => 'unavailable');
  return {
    cpuModel: cpuinfoField(cpuinfo, 'model name') ?? os.cpus()[0]?.model ?? 'unknown',
    microcode: cpuinfoField(cpuinfo, 'microcode') ?? 'unknown',
    kernel: os.release(),
    qemuVersion,
    cpus: overrides.cpus ?? os.availableParallelism(),
    memoryMb: overrides.memoryMb ?? Math.floor(os.totalmem() / (1024 * 1024)),
  };
}
