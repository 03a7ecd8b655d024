import { writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { DEFAULT_TIMINGS } from '../../domain/live-migration.ts';
import { sleep } from '../../scripts/services/proc-table.ts';
import { cpuBetween, cpuSnapshot } from '../lib/cpu.ts';
import { runCleanups } from '../lib/lifecycle.ts';
import { machineLine, revisionLine } from '../lib/provenance.ts';
import { ms } from '../lib/stats.ts';
import { benchWorkdir } from '../lib/workdir.ts';
import { migrateViaApi } from './api-run.ts';
import { BareGuest, BARE_POLL_MS } from './bare.ts';
import { planLiveMigration } from '../../domain/migration-plan.ts';
import { guestMigrationSettings } from '../../activities/migration-settings.ts';
import type { LiveMigrateOptions } from '../../domain/live-migration.ts';
import { benchGuestSpec, FALLBACK_START, GUEST, MAX_BANDWIDTH_MB, NETWORK, type QemuStart } from './guest.ts';
import {
  printReport,
  roundFigures,
  roundLine,
  TARGET_LATENCY_MS,
  TARGET_NOTICE_MS,
  TARGET_RATIO,
  type Round,
} from './report.ts';
import { startRunStack, type Orchestrator } from './stack.ts';

export const name = 'live-migrate';

export const summary =
  'bare QMP migration vs POST /v1/servers/:id/live-migrate of a 1 GiB guest (512 MiB filled, 5 MiB/s dirtied, 100 MiB/s cap)';

export const usage = `npm run bench -- live-migrate [--rounds N] [--warmup N] [--poll-ms MS] [--keep] [--json FILE]

  --rounds N    measured rounds, each one bare migration (a) and one API migration (b); default 10
                (so 10 wall times each way and 10 request->migrate samples)
  --warmup N    rounds run first and left out of the figures; default 1
  --poll-ms MS  the workflow's pollIntervalMs (monitor and health-check polling); default ${DEFAULT_TIMINGS.pollIntervalMs},
                the production default. Only for trying what a smaller interval would give.
  --keep        keep the temporary directory (logs, serial consoles) after the run
  --json FILE   also write every round's raw figures to FILE (an array of rounds: each with its
                headline figures, the (b) run's Temporal counts and its history's activities,
                local activities and workflow tasks)`;

interface Options {
  rounds: number;
  warmup: number;
  pollMs: number;
  keep: boolean;
  json: string | null;
}

function parseOptions(args: string[]): Options {
  const options: Options = {
    rounds: 10,
    warmup: 1,
    pollMs: DEFAULT_TIMINGS.pollIntervalMs,
    keep: false,
    json: null,
  };
  for (let i = 0; i < args.length; i++) {
    const [flag, inline] = (args[i] as string).split('=', 2) as [string, string | undefined];
    const value = () => {
      const raw = inline ?? args[++i];
      const n = Number(raw);
      if (raw === undefined || !Number.isInteger(n) || n < 0) throw new Error(`${flag} needs a whole number`);
      return n;
    };
    if (flag === '--rounds') options.rounds = Math.max(1, value());
    else if (flag === '--warmup') options.warmup = value();
    else if (flag === '--poll-ms') options.pollMs = Math.max(10, value());
    else if (flag === '--keep') options.keep = true;
    else if (flag === '--json') {
      options.json = inline ?? args[++i] ?? null;
      if (!options.json) throw new Error('--json needs a file name');
    } else throw new Error(`live-migrate: unknown argument '${args[i]}'\n\n${usage}`);
  }
  return options;
}

export async function run(args: string[]): Promise<void> {
  const options = parseOptions(args);
  const print = (line = '') => console.log(line);
  const { root, succeeded, track } = benchWorkdir({ prefix: 'vmmig-bench-', keep: options.keep, print });

  print(`live-migrate: ${summary}`);
  print(`machine: ${machineLine(' (TCG, no KVM)')}`);
  print(`code: ${revisionLine()}`);
  print(
    `guest: ${GUEST.vcpus} vCPU, ${GUEST.memoryMb} MiB, fillMb ${GUEST.fillMb}, dirtyRateMibs ${GUEST.dirtyRateMibs}, ` +
      `no disk, one NIC; POST body {prefer_host, max_bandwidth_mb: ${MAX_BANDWIDTH_MB}}`,
  );
  print(
    `rounds: ${options.rounds} measured + ${options.warmup} warm-up; order alternates (a,b)/(b,a); ` +
      `workflow pollIntervalMs ${options.pollMs}${options.pollMs === DEFAULT_TIMINGS.pollIntervalMs ? ' (default)' : ' (NOT the default)'}`,
  );
  print(`temp dir: ${root}`);
  print();
  print('(a) wall = spawn of the destination QEMU -> source QEMU process exited. It includes: destination');
  print(
    '    start + QMP handshake + migrate-incoming, source migrate-set-capabilities/-parameters (the values',
  );
  print("    the workflow's plan starts with: downtime limit, cap, auto-converge, xbzrle), `migrate`,");
  print(
    `    query-migrate every ${BARE_POLL_MS} ms until completed, \`quit\` and the exit of the source process.`,
  );
  print('(b) wall = HTTP POST /v1/servers/:id/live-migrate sent -> migration row phase completed');
  print(
    '    (timings.completed.startedAt, database clock). It includes the API handler and its wait for the',
  );
  print('    pre-checks, every workflow step and activity, the destination QEMU start, the copy, the health');
  print('    check (the guest heartbeats on the destination), the inventory commit and the source cleanup.');
  print(
    'request -> QMP migrate = the POST sent -> MigrationStatus.startedAt (the source agent sent `migrate`).',
  );
  print(
    'QEMU completed -> workflow notices = MigrationStatus.startedAt + QEMU total-time -> the monitorMigration',
  );
  print("    activity's ActivityTaskCompleted event (the workflow learns the copy is over).");
  print();

  try {
    const { stack } = await startRunStack({ root, track }, print, {
      hosts: ['host-1', 'host-2'],
      timings: { ...DEFAULT_TIMINGS, pollIntervalMs: options.pollMs },
    });

    const t = Date.now();
    const created = await stack.api<{ id: string; name: string }>('POST', '/v1/servers', {
      name: 'bench-api',
      host: 'host-1',
      ...GUEST,
      networks: [{ name: NETWORK, mac: '52:54:00:be:00:01' }],
    });
    if (created.status !== 202 || !created.body.id) {
      throw new Error(`POST /v1/servers: ${created.status} ${JSON.stringify(created.body)}`);
    }
    const apiGuest = created.body;
    const bareBoot = BareGuest.boot(
      root,
      benchGuestSpec('bench-bare', 'bench-bare', '52:54:00:be:00:02'),
      'bare-1',
    );
    // Awaited below; if the API guest fails first, its rejection must not go unhandled.
    bareBoot.catch(() => undefined);
    await waitForApiGuest(stack, apiGuest.id);
    const bare = track(await bareBoot, 'the bare guest');
    print(`guests: bench-api on host-1 and bench-bare on bare-1 booted and filled in ${ms(Date.now() - t)}`);
    const bareStart = await plannedStart(stack, apiGuest.id, print);
    print();

    const rounds: Round[] = [];
    let apiFrom = 'host-1';
    const total = options.warmup + options.rounds;
    for (let i = 0; i < total; i++) {
      const warmup = i < options.warmup;
      const load = os.loadavg()[0] ?? Number.NaN;
      const apiTo = apiFrom === 'host-1' ? 'host-2' : 'host-1';
      const bareTo = bare.side === 'bare-1' ? 'bare-2' : 'bare-1';
      const doBare = async () => {
        const machine = cpuSnapshot();
        const cpu = process.cpuUsage();
        const result = await bare.migrateTo(bareTo, bareStart);
        const used = process.cpuUsage(cpu);
        const cores = cpuBetween(machine, cpuSnapshot());
        await bare.waitAlive();
        const corrupt = await bare.corruptionReports();
        if (corrupt.length > 0) print(`WARNING: bare guest reports lost writes: ${corrupt.join(' | ')}`);
        return { result, cpuMs: (used.user + used.system) / 1000, cores };
      };
      const doApi = async () => {
        const machine = cpuSnapshot();
        const cpu = process.cpuUsage();
        const result = await migrateViaApi(stack, root, apiGuest, apiFrom, apiTo);
        const used = process.cpuUsage(cpu);
        const cores = cpuBetween(machine, cpuSnapshot());
        if (result.corruption.length > 0) {
          print(`WARNING: API guest reports lost writes: ${result.corruption.join(' | ')}`);
        }
        return { result, cpuMs: (used.user + used.system) / 1000, cores };
      };
      // Alternate the order so that neither side always runs right after the other's churn.
      let a: Awaited<ReturnType<typeof doBare>>;
      let b: Awaited<ReturnType<typeof doApi>>;
      if (i % 2 === 0) {
        a = await doBare();
        await sleep(500);
        b = await doApi();
      } else {
        b = await doApi();
        await sleep(500);
        a = await doBare();
      }
      apiFrom = apiTo;
      const round: Round = {
        index: i - options.warmup + 1,
        warmup,
        bare: a.result,
        api: b.result,
        load,
        bareCpuMs: a.cpuMs,
        apiCpuMs: b.cpuMs,
        bareCores: a.cores,
        apiCores: b.cores,
      };
      round.figures = roundFigures(round);
      rounds.push(round);
      print(roundLine(round));
      await sleep(500);
    }
    print();
    writeFileSync(path.join(root, 'results.json'), `${JSON.stringify(rounds, null, 2)}\n`);
    if (options.json) writeFileSync(options.json, `${JSON.stringify(rounds, null, 2)}\n`);
    const { missed } = printReport(rounds, bareStart, print);
    print();
    if (missed.length === 0)
      print(
        `targets: all met (ratio <= ${TARGET_RATIO.toFixed(2)}, request->migrate <= ${TARGET_LATENCY_MS} ms, ` +
          `QEMU completed->noticed <= ${TARGET_NOTICE_MS} ms)`,
      );
    else print(`targets: MISSED ${missed.join(', ')} (see above); this is a result, not an error`);
    print();
    succeeded();
  } finally {
    await runCleanups();
  }
}

/**
 * The QEMU settings the workflow will start this guest's migration with (same settings resolution and
 * plan as the workflow), so that the bare script migrates the same way: the floor of the same migration.
 */
async function plannedStart(
  stack: Orchestrator,
  guestId: string,
  print: (line?: string) => void,
): Promise<QemuStart> {
  const options: LiveMigrateOptions = {
    preferHost: null,
    skipCpuCheck: false,
    skipKernelCheck: false,
    enableTls: false,
    quicklyFinish: false,
    maxBandwidthMb: MAX_BANDWIDTH_MB,
    keepDestGuestOnFailed: false,
  };
  try {
    const resolved = await guestMigrationSettings(stack.db.db, guestId);
    if (!resolved) throw new Error(`guest ${guestId} not found`);
    const plan = planLiveMigration(resolved.settings, options, { memoryMb: GUEST.memoryMb, disks: [] });
    print(`plan of the workflow for this guest: ${plan.start.reason}`);
    const {
      downtimeMs,
      bandwidthBytes,
      autoConverge,
      xbzrle,
      postCopy,
      cpuThrottleInitial,
      cpuThrottleIncrement,
    } = plan.start;
    if (postCopy) print('NOTE: the plan allows post-copy; the bare script never switches to it');
    return {
      downtimeMs,
      bandwidthBytes,
      autoConverge,
      xbzrle,
      postCopy,
      cpuThrottleInitial,
      cpuThrottleIncrement,
    };
  } catch (error) {
    print(
      `NOTE: could not compute the workflow's plan (${String(error)}); (a) uses ${JSON.stringify(FALLBACK_START)}`,
    );
    return FALLBACK_START;
  }
}

async function waitForApiGuest(stack: Orchestrator, id: string): Promise<void> {
  const deadline = Date.now() + 180_000;
  for (;;) {
    const res = await stack.api<{
      status: string;
      lastError: string | null;
      live: { heartbeat: unknown } | null;
    }>('GET', `/v1/servers/${id}`);
    if (res.body.status === 'running' && res.body.live?.heartbeat) return;
    if (res.body.status === 'error') throw new Error(`bench-api could not start: ${res.body.lastError}`);
    if (Date.now() > deadline) throw new Error('bench-api not running with a heartbeat after 180 s');
    await sleep(500);
  }
}
