import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdir, open, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import type { DiskCopyStatus } from '../../domain/agent-contract.ts';
import { conflict } from '../errors.ts';
import { type DiskCopies, decideExport, decideImport, hostPort } from '../guest-rules.ts';
import { errorMessage, type Logger } from '../log.ts';
import { processAlive, processCommandLine } from '../proc-stat.ts';
import { processListeningPorts } from './qemu-block.ts';
import { signal, waitForExit } from './qemu-process.ts';
import { authzObject, qemuOptionValue, TLS_AUTHZ_ID, TLS_OBJECT_ID, tlsCredsObject } from './qemu-tls.ts';

/**
 * Cold migration of local disks with QEMU's tools, libvirt-free:
 * - export (source): `qemu-nbd --read-only --persistent --shared=2 --format=qcow2 --bind <address>
 *   --port 0 --export-name=<diskId> <image>`, in its own session (it outlives an agent restart, as
 *   QEMU does; the next agent adopts it from `<guestDir>/disk-copy/<diskId>.export.json`). Port 0
 *   lets the kernel pick a free port, read back from /proc (processListeningPorts). The uri is
 *   `nbd://<address>:<port>/<diskId>`. With TLS it also gets this host's server credentials
 *   (`--object tls-creds-x509,…,endpoint=server,verify-peer=on --tls-creds`) and, when the importing
 *   host is named, an authz-simple object admitting only its certificate's DN (`--tls-authz`): a
 *   client without a certificate of the CA, or with another host's, is refused at the handshake and
 *   the export serves on. It lives for one copy: the caller stops it once the import completed (or
 *   the migration ended), and DELETE of the guest stops it too.
 * - import (destination): `qemu-img convert -p -f raw -O qcow2 <nbdUri> <image>.importing`, renamed
 *   over the image once it exited 0 (a half copy never looks complete). With TLS the source is given
 *   as `--image-opts` with this host's client credentials and the source's name as `tls-hostname`.
 *   Progress is its `-p` output, `(NN.NN/100%)`. The status lives in memory; a leftover process of a
 *   previous agent is killed and its partial file removed at start.
 */

const run = promisify(execFile);
const EXPORT_LISTEN_TIMEOUT_MS = 10_000;
const STOP_GRACE_MS = 3_000;
const STDERR_TAIL = 2_000;

export interface QemuDiskCopyOptions {
  qemuImg: string;
  qemuNbd: string;
  log: Logger;
}

interface ExportRecord {
  pid: number;
  nbdUri: string;
  listenAddress: string;
  image: string;
  /** Whether it serves over TLS, and the one DN it admits (absent in records of older agents: plain). */
  tls?: boolean;
  peerDn?: string | null;
}

/** An export over TLS: this host's credentials directory and the importing host's DN (null: any of the CA). */
export interface ExportTls {
  dir: string;
  peerDn: string | null;
}

/** An import over TLS: this host's credentials directory and the name the source's certificate carries. */
export interface ImportTls {
  dir: string;
  hostname: string;
}

interface NbdExport extends ExportRecord {
  guestId: string;
  diskId: string;
  recordDir: string;
}

interface ImportRun {
  guestId: string;
  diskId: string;
  image: string;
  status: DiskCopyStatus & { nbdUri: string };
  child: ChildProcess | null;
  cancelled: string | null;
  /** Settles once the process ended and the image (or the partial file) was dealt with. */
  done: Promise<void>;
}

/** `nbd://<host>:<port>/<export>` as exports here make them (IPv6 hosts in brackets); null otherwise. */
export function parseNbdExportUri(uri: string): { host: string; port: number; exportName: string } | null {
  const match = /^nbd:\/\/(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})\/([A-Za-z0-9._:-]*)$/.exec(uri);
  if (match === null) return null;
  const port = Number(match[2]);
  if (port < 1 || port > 65535) return null;
  return { host: match[1]!.replace(/^\[|\]$/g, ''), port, exportName: match[3]! };
}

export function nbdExportUri(host: string, port: number, exportName: string): string {
  return `nbd://${hostPort(host, port)}/${exportName}`;
}

/** The qemu-nbd command line of a read-only export (see the top of this file). Pure. */
export function qemuNbdArgs(input: {
  listenAddress: string;
  diskId: string;
  image: string;
  tls: ExportTls | null;
}): string[] {
  const { tls } = input;
  const tlsArgs =
    tls === null
      ? []
      : [
          '--object',
          tlsCredsObject(TLS_OBJECT_ID.server, tls.dir, 'server'),
          `--tls-creds=${TLS_OBJECT_ID.server}`,
          ...(tls.peerDn === null
            ? []
            : ['--object', authzObject(tls.peerDn), `--tls-authz=${TLS_AUTHZ_ID}`]),
        ];
  return [
    '--read-only',
    '--persistent',
    '--shared=2',
    '--format=qcow2',
    '--bind',
    input.listenAddress,
    '--port',
    '0',
    `--export-name=${input.diskId}`,
    ...tlsArgs,
    input.image,
  ];
}

/** The qemu-img command line of an import into `partial`; null when the uri is not one of ours. Pure. */
export function qemuImgConvertArgs(input: {
  nbdUri: string;
  partial: string;
  tls: ImportTls | null;
}): string[] | null {
  const { tls } = input;
  if (tls === null) return ['convert', '-p', '-f', 'raw', '-O', 'qcow2', input.nbdUri, input.partial];
  const source = parseNbdExportUri(input.nbdUri);
  if (source === null) return null;
  const file = [
    'driver=raw',
    'file.driver=nbd',
    'file.server.type=inet',
    `file.server.host=${qemuOptionValue(source.host)}`,
    `file.server.port=${source.port}`,
    `file.export=${qemuOptionValue(source.exportName)}`,
    `file.tls-creds=${TLS_OBJECT_ID.client}`,
    `file.tls-hostname=${qemuOptionValue(tls.hostname)}`,
  ].join(',');
  return [
    'convert',
    '-p',
    '--object',
    tlsCredsObject(TLS_OBJECT_ID.client, tls.dir, 'client'),
    '--image-opts',
    file,
    '-O',
    'qcow2',
    input.partial,
  ];
}

/** The last `(NN.NN/100%)` of qemu-img's -p output, as a fraction; null when there is none. */
export function lastProgress(output: string): number | null {
  let last: number | null = null;
  for (const match of output.matchAll(/\((\d+(?:\.\d+)?)\/100%\)/g)) last = Number(match[1]) / 100;
  return last === null ? null : Math.min(1, Math.max(0, last));
}

const key = (guestId: string, diskId: string) => `${guestId}\u0000${diskId}`;

export class QemuDiskCopies {
  private readonly exports = new Map<string, NbdExport>();
  private readonly imports = new Map<string, ImportRun>();

  constructor(private readonly options: QemuDiskCopyOptions) {}

  /** What the guest's disks are doing here (exports that still run, imports still copying). */
  async copiesOf(guestId: string): Promise<DiskCopies> {
    const exported: string[] = [];
    for (const item of this.exports.values()) {
      if (item.guestId === guestId && (await this.exportAlive(item))) exported.push(item.diskId);
    }
    const importing = [...this.imports.values()]
      .filter((item) => item.guestId === guestId && item.status.status === 'copying')
      .map((item) => item.diskId);
    return { exported, importing };
  }

  /** Starts the export, or answers with the uri of the one that runs. */
  async exportDisk(input: {
    guestId: string;
    diskId: string;
    image: string;
    listenAddress: string;
    recordDir: string;
    tls: ExportTls | null;
  }): Promise<string> {
    const { guestId, diskId, image, listenAddress, recordDir, tls } = input;
    const existing = this.exports.get(key(guestId, diskId));
    if (existing !== undefined) {
      if (await this.exportAlive(existing)) {
        if (decideExport(existing, listenAddress) === 'current') {
          assertSameTls(existing, tls);
          return existing.nbdUri;
        }
      } else {
        this.options.log(
          `guest ${guestId}: export of disk ${diskId} (pid ${existing.pid}) is gone; starting it again`,
        );
        await this.forgetExport(existing);
      }
    }
    await mkdir(recordDir, { recursive: true });
    const logPath = path.join(recordDir, `${diskId}.export.log`);
    const args = qemuNbdArgs({ listenAddress, diskId, image, tls });
    const log = await open(logPath, 'a');
    let exitReason: string | null = null;
    let started: Promise<number>;
    try {
      const child = spawn(this.options.qemuNbd, args, { detached: true, stdio: ['ignore', log.fd, log.fd] });
      // Listeners before any await: 'spawn' and 'error' come on the next turns of the event loop.
      child.once('exit', (code, sig) => (exitReason = sig ?? `code ${code}`));
      started = new Promise<number>((resolve, reject) => {
        child.once('spawn', () => resolve(child.pid!));
        child.once('error', reject);
      });
      // Handled below, after the log is closed; never an unhandled rejection meanwhile.
      started.catch(() => undefined);
      child.unref();
    } finally {
      await log.close();
    }
    const pid = await started.catch((error: unknown) => {
      throw new Error(`cannot start ${this.options.qemuNbd}: ${errorMessage(error)}`);
    });
    const deadline = Date.now() + EXPORT_LISTEN_TIMEOUT_MS;
    let port: number | null = null;
    while (port === null) {
      if (exitReason !== null) {
        const tail = (await readFile(logPath, 'utf8').catch(() => ''))
          .trim()
          .split('\n')
          .slice(-3)
          .join(' | ');
        throw new Error(`qemu-nbd exited at start (${exitReason}): ${tail}`);
      }
      const ports = [...(await processListeningPorts(pid))].sort((a, b) => a - b);
      if (ports.length > 0) port = ports[0]!;
      else if (Date.now() >= deadline) {
        signal(pid, 'SIGKILL');
        throw new Error(`qemu-nbd ${pid} did not listen within ${EXPORT_LISTEN_TIMEOUT_MS} ms`);
      } else await new Promise((resolve) => setTimeout(resolve, 20));
    }
    const item: NbdExport = {
      guestId,
      diskId,
      recordDir,
      pid,
      image,
      listenAddress,
      nbdUri: nbdExportUri(listenAddress, port, diskId),
      tls: tls !== null,
      peerDn: tls?.peerDn ?? null,
    };
    const record: ExportRecord = {
      pid,
      nbdUri: item.nbdUri,
      listenAddress,
      image,
      tls: item.tls,
      peerDn: item.peerDn,
    };
    await writeFile(path.join(recordDir, `${diskId}.export.json`), `${JSON.stringify(record)}\n`);
    this.exports.set(key(guestId, diskId), item);
    this.options.log(
      `guest ${guestId}: disk ${diskId} exported read-only on ${item.nbdUri} (qemu-nbd ${pid})` +
        (tls === null ? '' : `, TLS, admitting ${tls.peerDn ?? 'any certificate of the CA'}`),
    );
    return item.nbdUri;
  }

  /** The uri of the disk's export while its qemu-nbd runs, else null. */
  async runningExport(guestId: string, diskId: string): Promise<string | null> {
    const item = this.exports.get(key(guestId, diskId));
    return item !== undefined && (await this.exportAlive(item)) ? item.nbdUri : null;
  }

  /** false when the disk was not exported. */
  async stopExport(guestId: string, diskId: string): Promise<boolean> {
    const item = this.exports.get(key(guestId, diskId));
    if (item === undefined) return false;
    const alive = await this.exportAlive(item);
    if (alive) await stopProcess(item.pid);
    await this.forgetExport(item);
    this.options.log(`guest ${guestId}: export of disk ${diskId} stopped`);
    return alive;
  }

  /** Starts the copy, or answers with the status of the one from the same uri (copying or completed). */
  async importDisk(input: {
    guestId: string;
    diskId: string;
    nbdUri: string;
    image: string;
    totalBytes: number;
    recordDir: string;
    tls: ImportTls | null;
  }): Promise<DiskCopyStatus> {
    const { guestId, diskId, nbdUri, image, totalBytes, recordDir } = input;
    const current = this.imports.get(key(guestId, diskId));
    if (current !== undefined) {
      if (decideImport(current.status, nbdUri) === 'current') return { ...current.status };
      await this.cancelImport(current, `replaced by an import from ${nbdUri}`);
    }
    const partial = `${image}.importing`;
    await mkdir(path.dirname(image), { recursive: true });
    await mkdir(recordDir, { recursive: true });
    const args = qemuImgConvertArgs({ nbdUri, partial, tls: input.tls });
    if (args === null) throw new Error(`cannot read ${nbdUri} over TLS: not nbd://<host>:<port>/<export>`);
    await rm(partial, { force: true });
    const child = spawn(this.options.qemuImg, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    const item: ImportRun = {
      guestId,
      diskId,
      image,
      status: {
        status: 'copying',
        copiedBytes: 0,
        totalBytes,
        error: null,
        nbdUri,
        startedAt: Date.now(),
        finishedAt: null,
      },
      child,
      cancelled: null,
      done: Promise.resolve(),
    };
    const pidFile = path.join(recordDir, `${diskId}.import.pid`);
    let stderr = '';
    child.stdout!.setEncoding('utf8');
    child.stdout!.on('data', (chunk: string) => {
      const fraction = lastProgress(chunk);
      if (fraction !== null && item.status.status === 'copying') {
        item.status.copiedBytes = Math.max(
          item.status.copiedBytes,
          Math.floor(fraction * item.status.totalBytes),
        );
      }
    });
    child.stderr!.setEncoding('utf8');
    child.stderr!.on('data', (chunk: string) => {
      stderr = (stderr + chunk).slice(-STDERR_TAIL);
    });
    const exited = new Promise<string | null>((resolve) => {
      child.once('close', (code, sig) => resolve(code === 0 ? null : (sig ?? `code ${code}`)));
      child.once('error', (error) => resolve(`spawn error: ${error.message}`));
    });
    item.done = (async () => {
      if (child.pid !== undefined) await writeFile(pidFile, `${child.pid}\n`).catch(() => undefined);
      const failure = await exited;
      item.child = null;
      try {
        if (item.cancelled !== null) throw new Error(item.cancelled);
        if (failure !== null) {
          const detail = stderr.trim().split('\n').slice(-3).join(' | ');
          throw new Error(`qemu-img convert failed (${failure})${detail ? `: ${detail}` : ''}`);
        }
        const size = await virtualSize(this.options.qemuImg, partial);
        await rename(partial, image);
        await syncDir(path.dirname(image));
        item.status = {
          ...item.status,
          status: 'completed',
          copiedBytes: size ?? item.status.totalBytes,
          totalBytes: size ?? item.status.totalBytes,
          finishedAt: Date.now(),
        };
        const seconds = (item.status.finishedAt! - item.status.startedAt!) / 1000;
        this.options.log(
          `guest ${guestId}: disk ${diskId} copied from ${nbdUri} (${item.status.totalBytes} bytes in ${seconds.toFixed(2)} s)`,
        );
      } catch (error) {
        await rm(partial, { force: true });
        item.status = {
          ...item.status,
          status: 'failed',
          error: errorMessage(error),
          finishedAt: Date.now(),
        };
        this.options.log(`guest ${guestId}: import of disk ${diskId} failed: ${item.status.error}`);
      } finally {
        await rm(pidFile, { force: true });
      }
    })();
    this.imports.set(key(guestId, diskId), item);
    this.options.log(`guest ${guestId}: importing disk ${diskId} from ${nbdUri} (qemu-img ${child.pid})`);
    return { ...item.status };
  }

  importStatus(guestId: string, diskId: string): DiskCopyStatus | null {
    const item = this.imports.get(key(guestId, diskId));
    return item === undefined ? null : { ...item.status };
  }

  /** Stops the guest's exports and imports and forgets them (the guest goes). */
  async stopGuest(guestId: string): Promise<void> {
    for (const item of [...this.exports.values()]) {
      if (item.guestId === guestId) await this.stopExport(guestId, item.diskId);
    }
    for (const [itemKey, item] of [...this.imports.entries()]) {
      if (item.guestId !== guestId) continue;
      await this.cancelImport(item, 'the guest was destroyed');
      this.imports.delete(itemKey);
    }
  }

  /** Agent stop: every import ends; exports too unless `keepExports` (detach: the next agent adopts them). */
  async stopAll(reason: string, keepExports = false): Promise<void> {
    await Promise.all([...this.imports.values()].map((item) => this.cancelImport(item, reason)));
    this.imports.clear();
    if (keepExports) {
      this.exports.clear();
      return;
    }
    await Promise.all([...this.exports.values()].map((item) => this.stopExport(item.guestId, item.diskId)));
  }

  /**
   * Agent start, per guest: exports the previous agent left are adopted (their uri still holds), an
   * import it left is killed and its partial file removed (its status died with it).
   */
  async recover(guestId: string, recordDir: string, imageDir: string): Promise<void> {
    const files = await readdir(recordDir).catch(() => [] as string[]);
    for (const file of files) {
      const full = path.join(recordDir, file);
      if (file.endsWith('.export.json')) {
        const diskId = file.slice(0, -'.export.json'.length);
        const record = await readFile(full, 'utf8')
          .then((text) => JSON.parse(text) as ExportRecord)
          .catch(() => null);
        const item: NbdExport | null = record === null ? null : { ...record, guestId, diskId, recordDir };
        if (item !== null && (await this.exportAlive(item))) {
          this.exports.set(key(guestId, diskId), item);
          this.options.log(
            `guest ${guestId}: adopted export of disk ${diskId} on ${item.nbdUri} (qemu-nbd ${item.pid})`,
          );
        } else {
          await rm(full, { force: true });
        }
      } else if (file.endsWith('.import.pid')) {
        const pid = Number((await readFile(full, 'utf8').catch(() => '')).trim());
        if (Number.isInteger(pid) && pid > 0 && (await commandLineHas(pid, 'convert', imageDir))) {
          signal(pid, 'SIGKILL');
          await waitForExit(pid, 2000);
          this.options.log(
            `guest ${guestId}: killed the disk import (qemu-img ${pid}) a previous agent left`,
          );
        }
        await rm(full, { force: true });
      }
    }
    for (const file of await readdir(imageDir).catch(() => [] as string[])) {
      if (file.endsWith('.importing')) await rm(path.join(imageDir, file), { force: true });
    }
  }

  private async exportAlive(item: ExportRecord): Promise<boolean> {
    return commandLineHas(item.pid, '--read-only', item.image);
  }

  private async forgetExport(item: NbdExport): Promise<void> {
    if (this.exports.get(key(item.guestId, item.diskId)) === item)
      this.exports.delete(key(item.guestId, item.diskId));
    await rm(path.join(item.recordDir, `${item.diskId}.export.json`), { force: true });
  }

  private async cancelImport(item: ImportRun, reason: string): Promise<void> {
    if (item.child !== null && item.status.status === 'copying') {
      item.cancelled = `import cancelled: ${reason}`;
      item.child.kill('SIGTERM');
      const timer = setTimeout(() => item.child?.kill('SIGKILL'), STOP_GRACE_MS);
      try {
        await item.done;
      } finally {
        clearTimeout(timer);
      }
    } else {
      await item.done;
    }
  }
}

/** A retried export must ask for the TLS the running one serves with (409 export_conflict otherwise). */
function assertSameTls(existing: ExportRecord, tls: ExportTls | null): void {
  const running =
    existing.tls === true ? `TLS admitting ${existing.peerDn ?? 'any certificate of the CA'}` : 'plain';
  const asked = tls === null ? 'plain' : `TLS admitting ${tls.peerDn ?? 'any certificate of the CA'}`;
  if (running !== asked) {
    throw conflict(
      'export_conflict',
      `the export on ${existing.nbdUri} serves ${running}, not ${asked}`,
      'tls',
    );
  }
}

/** The process runs and its command line has both strings (pids get reused). */
async function commandLineHas(pid: number, ...needles: string[]): Promise<boolean> {
  if (!Number.isInteger(pid) || pid <= 0 || !(await processAlive(pid))) return false;
  const args = await processCommandLine(pid);
  return needles.every((needle) => args.some((arg) => arg.includes(needle)));
}

async function stopProcess(pid: number): Promise<void> {
  signal(pid, 'SIGTERM');
  if (!(await waitForExit(pid, STOP_GRACE_MS))) {
    signal(pid, 'SIGKILL');
    await waitForExit(pid, 2000);
  }
}

async function virtualSize(qemuImg: string, file: string): Promise<number | null> {
  try {
    const { stdout } = await run(qemuImg, ['info', '--output=json', '-f', 'qcow2', file]);
    const size = (JSON.parse(stdout) as { 'virtual-size'?: number })['virtual-size'];
    return typeof size === 'number' ? size : null;
  } catch {
    return null;
  }
}

/** A rename is durable once its directory is synced. */
async function syncDir(dir: string): Promise<void> {
  const handle = await open(dir, 'r').catch(() => null);
  if (handle === null) return;
  try {
    await handle.sync();
  } catch {
    // Some filesystems refuse fsync on a directory: the data itself was flushed by qemu-img.
  } finally {
    await handle.close();
  }
}
