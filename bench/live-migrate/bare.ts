import { readFile, mkdir } from 'node:fs/promises';
import path from 'node:path';
import { qemuArguments } from '../../agent/drivers/qemu-command.ts';
import {
  incomingPort,
  normaliseQueryMigrate,
  type QueryMigrate,
} from '../../agent/drivers/qemu-migration.ts';
import { readHeartbeat } from '../../agent/drivers/serial-heartbeat.ts';
import { QmpClient } from '../../agent/qmp.ts';
import type { GuestSpec, MigrationStatus } from '../../domain/agent-contract.ts';
import { guestImageDir } from '../../scripts/services/cache-dir.ts';
import { withLogTail } from '../../scripts/services/log-tail.ts';
import { startProcess, type ManagedProcess } from '../../scripts/services/process.ts';
import { sleep } from '../../scripts/services/proc-table.ts';
import type { QemuStart } from './guest.ts';

/** How often the bare script asks the source for query-migrate: small, so that it is the floor. */
export const BARE_POLL_MS = 50;

/** One migration done by hand over QMP; times in ms, measured from spawning the destination QEMU. */
export interface BareRun {
  from: string;
  to: string;
  /** Destination spawned -> source QEMU process exited. */
  wallMs: number;
  /** Destination spawned -> QMP up, migrate-incoming answered with its port. */
  destReadyMs: number;
  /** Destination spawned -> QMP `migrate` sent to the source (the analogue of request -> migrate). */
  migrateAtMs: number;
  /** `migrate` sent -> first query-migrate that says completed. */
  copyMs: number;
  /** completed seen -> source QEMU exited after `quit`. */
  quitMs: number;
  final: MigrationStatus;
}

interface Incarnation {
  side: string;
  dir: string;
  process: ManagedProcess;
  qmp: QmpClient;
}

/**
 * A guest run by QEMU directly, the same command line as the agent builds (agent/drivers/qemu-command.ts),
 * migrated between two "sides" (directories on this machine) with the QMP sequence the agent uses: the
 * floor against which the orchestrated migration is compared.
 */
export class BareGuest {
  private generation = 0;

  private constructor(
    private readonly root: string,
    private readonly spec: GuestSpec,
    private current: Incarnation,
  ) {}

  get side(): string {
    return this.current.side;
  }

  get serialLog(): string {
    return path.join(this.current.dir, 'serial.log');
  }

  /** Starts the source QEMU and waits until the guest has filled its memory and prints heartbeats. */
  static async boot(root: string, spec: GuestSpec, side: string, timeoutMs = 120_000): Promise<BareGuest> {
    const first = await launch(root, spec, side, 0, false);
    const guest = new BareGuest(root, spec, first);
    await guest.waitAlive(timeoutMs);
    return guest;
  }

  /**
   * Starts the destination QEMU (-incoming defer), migrate-incoming on a free port, migrate from the
   * source with the capabilities and parameters of `start` (the workflow's plan), polls query-migrate until completed, then quits
   * the source. Timed from spawning the destination to the source process's exit.
   */
  async migrateTo(side: string, start: QemuStart): Promise<BareRun> {
    const source = this.current;
    const t0 = Date.now();
    const destination = await launch(this.root, this.spec, side, ++this.generation, true);
    let handedOver = false;
    try {
      await destination.qmp.execute('migrate-set-capabilities', {
        capabilities: [
          { capability: 'events', state: true },
          { capability: 'postcopy-ram', state: start.postCopy },
        ],
      });
      await destination.qmp.execute('migrate-incoming', { uri: 'tcp:127.0.0.1:0' });
      const port = incomingPort(await destination.qmp.execute<QueryMigrate>('query-migrate'));
      if (port === null) throw new Error('destination QEMU did not report its incoming port');
      const destReady = Date.now();

      await source.qmp.execute('migrate-set-capabilities', {
        capabilities: [
          { capability: 'events', state: true },
          { capability: 'postcopy-ram', state: start.postCopy },
          { capability: 'auto-converge', state: start.autoConverge },
          { capability: 'xbzrle', state: start.xbzrle },
        ],
      });
      await source.qmp.execute('migrate-set-parameters', {
        'downtime-limit': start.downtimeMs,
        'max-bandwidth': start.bandwidthBytes,
        ...(start.cpuThrottleInitial !== null ? { 'cpu-throttle-initial': start.cpuThrottleInitial } : {}),
        ...(start.cpuThrottleIncrement !== null
          ? { 'cpu-throttle-increment': start.cpuThrottleIncrement }
          : {}),
      });
      const migrateAt = Date.now();
      await source.qmp.execute('migrate', { uri: `tcp:127.0.0.1:${port}` });

      let final: MigrationStatus;
      for (;;) {
        final = normaliseQueryMigrate(await source.qmp.execute<QueryMigrate>('query-migrate'), null);
        if (final.status === 'completed') break;
        if (final.status === 'failed' || final.status === 'cancelled') {
          throw new Error(`bare migration ${final.status}: ${final.errorDesc ?? 'no reason given'}`);
        }
        await sleep(BARE_POLL_MS);
      }
      const completedAt = Date.now();
      // QEMU flips the status to completed a moment before it fills in total-time and downtime; the
      // floor would not ask again, so the time spent re-asking for the figures is left out of (a).
      for (let i = 0; i < 20 && !final.totalTimeMs; i++) {
        await sleep(2);
        final = normaliseQueryMigrate(await source.qmp.execute<QueryMigrate>('query-migrate'), null);
      }
      const statsMs = Date.now() - completedAt;
      handedOver = true;
      const quitAt = Date.now();
      await source.qmp.execute('quit', undefined, 5_000).catch(() => undefined);
      const exited = await Promise.race([source.process.exited.then(() => true), sleep(10_000)]);
      if (!exited) throw new Error(`source QEMU ${source.process.pid} did not exit after quit`);
      const endedAt = Date.now();
      this.current = destination;
      await source.qmp.close();
      await source.process.stop();
      return {
        from: source.side,
        to: side,
        wallMs: endedAt - t0 - statsMs,
        destReadyMs: destReady - t0,
        migrateAtMs: migrateAt - t0,
        copyMs: completedAt - migrateAt,
        quitMs: endedAt - quitAt,
        final,
      };
    } catch (error) {
      if (!handedOver) {
        await destination.qmp.close();
        await destination.process.stop();
      }
      throw error;
    }
  }

  /** Until the heartbeat counter advances twice (the guest runs), failing on a corrupted page report. */
  async waitAlive(timeoutMs = 30_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let first: number | null = null;
    while (Date.now() < deadline) {
      if (!this.current.process.isRunning()) {
        throw new Error(withLogTail(`bare guest QEMU on ${this.side} exited`, this.current.process.logFile));
      }
      const counter = (await readHeartbeat(this.serialLog))?.counter ?? null;
      if (counter !== null) {
        first ??= counter;
        if (counter >= first + 2) return;
      }
      await sleep(200);
    }
    throw new Error(`bare guest on ${this.side}: no advancing heartbeat within ${timeoutMs} ms`);
  }

  /** Lines of the serial console where the guest found a page that lost a write ("DIRTIER CORRUPT"). */
  async corruptionReports(): Promise<string[]> {
    const text = await readFile(this.serialLog, 'latin1').catch(() => '');
    return text.split('\n').filter((line) => line.includes('DIRTIER CORRUPT'));
  }

  async stop(): Promise<void> {
    await this.current.qmp.execute('quit', undefined, 2_000).catch(() => undefined);
    await Promise.race([this.current.process.exited, sleep(5_000)]);
    await this.current.qmp.close();
    await this.current.process.stop();
  }
}

async function launch(
  root: string,
  spec: GuestSpec,
  side: string,
  generation: number,
  incoming: boolean,
): Promise<Incarnation> {
  // A fresh directory per QEMU, as an agent gives the destination its own guest dir and serial log.
  const dir = path.join(root, 'bare', `${side}-${generation}`);
  await mkdir(dir, { recursive: true });
  const images = guestImageDir();
  const args = qemuArguments({
    spec,
    kernelPath: path.join(images, 'vmlinuz'),
    initrdPath: path.join(images, 'initramfs.cpio.gz'),
    serialLogPath: path.join(dir, 'serial.log'),
    qmpSocketPath: path.join(dir, 'qmp.sock'),
    pidFilePath: path.join(dir, 'qemu.pid'),
    disks: [],
    incoming,
  });
  const child = startProcess({
    name: `bare QEMU ${side}`,
    command: 'qemu-system-x86_64',
    args,
    logFile: path.join(dir, 'qemu.log'),
    graceMs: 5_000,
  });
  try {
    const qmp = await Promise.race([
      QmpClient.connect(path.join(dir, 'qmp.sock'), { connectTimeoutMs: 10_000 }),
      child.exited.then(({ code, signal }) => {
        throw new Error(withLogTail(`QEMU exited at start (${signal ?? `code ${code}`})`, child.logFile));
      }),
    ]);
    return { side, dir, process: child, qmp };
  } catch (error) {
    await child.stop();
    throw error;
  }
}
