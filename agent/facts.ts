import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';

/** What the qemu driver reports about the real machine it runs on. */
export interface PlatformFacts {
  cpuModel: string;
  microcode: string;
  kernel: string;
  qemuVersion: string;
  cpus: number;
  memoryMb: number;
  /** Megabits per second of the link migrations use; absent when unknown. */
  migrationLinkMbps?: number;
}

export interface PlatformOverrides {
  cpus?: number;
  memoryMb?: number;
  qemuBinary?: string;
  /** The address migrations leave this host from (its migration address, else its management address). */
  migrationAddress?: string | null;
  /** The configured link speed (AGENT_MIGRATION_LINK_MBPS): wins over what the interface says. */
  migrationLinkMbps?: number;
  /** Where the kernel lists the network interfaces (tests: a fake one). */
  sysClassNet?: string;
  /** os.networkInterfaces(), or a fake one. */
  interfaces?: NodeJS.Dict<os.NetworkInterfaceInfo[]>;
}

/** No NIC is faster than this (Mbit/s); more is an unknown speed some drivers print as 2^32 - 1. */
export const MAX_LINK_MBPS = 10_000_000;

/**
 * The content of /sys/class/net/<iface>/speed as megabits per second; undefined for what is not a
 * speed: -1 (no link, or a virtual device that has none), 0, 4294967295, empty or garbage.
 */
export function parseLinkSpeedMbps(content: string): number | undefined {
  const text = content.trim();
  if (!/^-?\d+$/.test(text)) return undefined;
  const mbps = Number(text);
  return mbps > 0 && mbps <= MAX_LINK_MBPS ? mbps : undefined;
}

/** The interface holding `address`; null when none does, or it is a loopback (internal) one. */
export function interfaceOfAddress(
  address: string,
  interfaces: NodeJS.Dict<os.NetworkInterfaceInfo[]>,
): string | null {
  // "[v6]" as in a URI, and no zone ("fe80::1%eth0"): the interfaces list addresses bare.
  const wanted = address
    .replace(/^\[|\]$/g, '')
    .replace(/%.*$/, '')
    .toLowerCase();
  for (const [name, infos] of Object.entries(interfaces)) {
    const info = infos?.find((i) => i.address.toLowerCase() === wanted);
    if (info) return info.internal ? null : name;
  }
  return null;
}

/**
 * The speed of the interface that carries `address`, in megabits per second: undefined when no interface
 * holds the address, it is a loopback, or the kernel knows no speed for it.
 */
export async function readLinkSpeedMbps(
  address: string,
  options: Pick<PlatformOverrides, 'sysClassNet' | 'interfaces'> = {},
): Promise<number | undefined> {
  const iface = interfaceOfAddress(address, options.interfaces ?? os.networkInterfaces());
  if (iface === null || iface.includes('/') || iface.startsWith('.')) return undefined;
  const speed = await readFile(
    path.join(options.sysClassNet ?? '/sys/class/net', iface, 'speed'),
    'utf8',
  ).catch(() => '');
  return parseLinkSpeedMbps(speed);
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
  const migrationLinkMbps =
    overrides.migrationLinkMbps ??
    (overrides.migrationAddress ? await readLinkSpeedMbps(overrides.migrationAddress, overrides) : undefined);
  return {
    cpuModel: cpuinfoField(cpuinfo, 'model name') ?? os.cpus()[0]?.model ?? 'unknown',
    microcode: cpuinfoField(cpuinfo, 'microcode') ?? 'unknown',
    kernel: os.release(),
    qemuVersion,
    cpus: overrides.cpus ?? os.availableParallelism(),
    memoryMb: overrides.memoryMb ?? Math.floor(os.totalmem() / (1024 * 1024)),
    ...(migrationLinkMbps === undefined ? {} : { migrationLinkMbps }),
  };
}
