import { readdir, readFile, readlink } from 'node:fs/promises';
import { isIPv4, isIPv6 } from 'node:net';

/**
 * Block migration of local disks, libvirt's way: the destination exports its new, empty disks over
 * NBD (nbd-server-start + nbd-server-add, writable, export name = disk id); the source adds an NBD
 * client node per disk (blockdev-add) and mirrors into it (blockdev-mirror, sync full, jobs kept after
 * they end so that their outcome can be read), starts the RAM copy once every job is READY, and at
 * pre-switchover (the pause-before-switchover capability) completes the jobs with a soft
 * block-job-cancel, which copies what is still dirty and leaves the source on its own disks.
 */

/** What query-block-jobs says about one job (QEMU 7.2 BlockJobInfo, the parts we read). */
export interface BlockJobInfo {
  device: string;
  type: string;
  len: number;
  offset: number;
  ready: boolean;
  status: string;
  error?: string;
}

/** Job and node ids by the disk's position among the local disks: QEMU node names stop at 31 chars. */
export function mirrorJobId(index: number): string {
  return `vmmig-mirror-${index}`;
}

export function mirrorTargetNode(index: number): string {
  return `vmmig-nbd-${index}`;
}

export interface MirrorJobs {
  /** One entry per local disk, in order; null where QEMU has no such job. */
  jobs: (BlockJobInfo | null)[];
  transferredBytes: number;
  totalBytes: number;
  /** Every job READY (or already concluded without error). */
  ready: boolean;
  /** The first job that ended with an error, or is gone, with the disk's id. */
  failure: { diskId: string; error: string } | null;
}

export function mirrorJobs(diskIds: readonly string[], all: readonly BlockJobInfo[]): MirrorJobs {
  const jobs = diskIds.map((_, index) => all.find((job) => job.device === mirrorJobId(index)) ?? null);
  let failure: MirrorJobs['failure'] = null;
  jobs.forEach((job, index) => {
    if (failure !== null) return;
    const diskId = diskIds[index]!;
    if (job === null) failure = { diskId, error: 'the mirror job is gone' };
    else if (job.error !== undefined) failure = { diskId, error: job.error };
  });
  return {
    jobs,
    transferredBytes: jobs.reduce((sum, job) => sum + (job?.offset ?? 0), 0),
    totalBytes: jobs.reduce((sum, job) => sum + (job?.len ?? 0), 0),
    ready: jobs.every((job) => job !== null && (job.ready || job.status === 'concluded')),
    failure,
  };
}

/** `/proc/net/tcp{,6}` rows in LISTEN state: socket inode -> local port. */
export function listeningPorts(procNetTcp: string): Map<string, number> {
  const ports = new Map<string, number>();
  for (const line of procNetTcp.split('\n').slice(1)) {
    const fields = line.trim().split(/\s+/);
    if (fields.length < 10 || fields[3] !== '0A') continue;
    const port = Number.parseInt(fields[1]!.split(':').at(-1) ?? '', 16);
    if (Number.isInteger(port) && port > 0) ports.set(fields[9]!, port);
  }
  return ports;
}

/**
 * The TCP ports process `pid` listens on. QEMU has no query for the port an `nbd-server-start` on
 * port 0 bound: the driver reads it here, comparing before and after.
 */
export async function processListeningPorts(pid: number): Promise<Set<number>> {
  const inodes = new Set<string>();
  const fds = await readdir(`/proc/${pid}/fd`).catch(() => [] as string[]);
  for (const fd of fds) {
    const target = await readlink(`/proc/${pid}/fd/${fd}`).catch(() => '');
    const match = /^socket:\[(\d+)\]$/.exec(target);
    if (match) inodes.add(match[1]!);
  }
  const ports = new Set<number>();
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    const text = await readFile(table, 'utf8').catch(() => '');
    for (const [inode, port] of listeningPorts(text)) if (inodes.has(inode)) ports.add(port);
  }
  return ports;
}

/**
 * An address that binds every interface (0.0.0.0, ::, or nothing): a migration or NBD listener binds
 * the one migration address instead, so nothing else on the host's networks can reach it.
 */
export function isWildcardAddress(address: string): boolean {
  const bare = address.trim().replace(/^\[|\]$/g, '');
  if (bare === '' || bare === '*') return true;
  if (isIPv4(bare)) return /^0+(\.0+){3}$/.test(bare);
  return isIPv6(bare) && /^[0:]+$/.test(bare);
}
