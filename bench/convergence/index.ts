import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { silentLogger } from '../../agent/log.ts';
import { defaultGuestImageDir } from '../../agent/settings.ts';
import { startAgent } from '../../agent/start-agent.ts';
import { AgentClient } from '../../activities/agent-client.ts';
import { addCleanup, runCleanups } from '../lib/lifecycle.ts';
import { killProcessesUnder, processesUnder, reapProcessesUnder } from '../lib/processes.ts';
import { bootGuest, destroyEverywhere, migrateOnce, type Host, type RunResult } from './migrate.ts';
import {
  projectionLines,
  runsTable,
  summaryTable,
  TARGET_FLOOR_RATIO,
  TARGET_RATIO,
  verdict,
} from './report.ts';
import { CAP_MIB_PER_S, contenders, contenderKeys, GUEST, type ContenderKey } from './scenario.ts';

export const name = 'convergence';

export const summary =
  `a guest dirtying ${GUEST.dirtyRateMibs} MiB/s over a ${CAP_MIB_PER_S} MiB/s cap under our predictive default, ` +
  `KubeVirt's and Nova's defaults`;

export const usage = `npm run bench -- convergence [--runs N] [--nova-seconds S] [--only P,...] [--keep] [--json FILE]
(or: npx tsx bench/convergence/run.ts [same arguments])

  --runs N          migrations per policy; default 2 (medians are printed)
  --nova-seconds S  stop a Nova migration still running S s after migrate; default 90. Nova's own
                    completion timeout aborts only at 1600 s (800 s/GiB x 2 GiB minimum): 0 runs it
                    to that end (~27 min per run)
  --only P,...      only these of ${contenderKeys.join(', ')}
  --keep            keep the temporary directory (agent dirs, serial consoles) after the run
  --json FILE       also write every run's figures and actions to FILE`;

interface Options {
  runs: number;
  novaSeconds: number;
  only: ContenderKey[];
  keep: boolean;
  json: string | null;
}

/** Any other migration is stopped this long after migrate: KubeVirt's default needs ~155 s. */
const SAFETY_LIMIT_SECONDS = 420;
const TOKEN = 'bench-convergence';

function parseOptions(args: string[]): Options {
  const options: Options = { runs: 2, novaSeconds: 90, only: [...contenderKeys], keep: false, json: null };
  for (let i = 0; i < args.length; i++) {
    const [flag, inline] = (args[i] as string).split('=', 2) as [string, string | undefined];
    const text = () => {
      const raw = inline ?? args[++i];
      if (raw === undefined) throw new Error(`${flag} needs a value`);
      return raw;
    };
    const whole = () => {
      const n = Number(text());
      if (!Number.isInteger(n) || n < 0) throw new Error(`${flag} needs a whole number`);
      return n;
    };
    if (flag === '--runs') options.runs = Math.max(1, whole());
    else if (flag === '--nova-seconds') options.novaSeconds = whole();
    else if (flag === '--only') {
      const keys = text().split(',');
      for (const key of keys) {
        if (!(contenderKeys as readonly string[]).includes(key)) {
          throw new Error(`--only: '${key}' is not one of ${contenderKeys.join(', ')}`);
        }
      }
      options.only = keys as ContenderKey[];
    } else if (flag === '--keep') options.keep = true;
    else if (flag === '--json') options.json = text();
    else throw new Error(`convergence: unknown argument '${args[i]}'\n\n${usage}`);
  }
  return options;
}

function revisionLine(): string {
  const git = (...args: string[]) => spawnSync('git', args, { encoding: 'utf8' }).stdout.trim();
  const head = git('log', '-1', '--format=%h %s');
  const dirty = git('status', '--porcelain', '--untracked-files=no').split('\n').filter(Boolean).length;
  return `${head || 'unknown'}${dirty > 0 ? ` + uncommitted changes in ${dirty} file(s)` : ''}`;
}

function machineLine(): string {
  const cpus = os.cpus();
  const qemu = spawnSync('qemu-system-x86_64', ['--version'], { encoding: 'utf8' }).stdout.split('\n')[0];
  return (
    `${cpus.length} x ${cpus[0]?.model ?? 'unknown CPU'}, ${(os.totalmem() / 2 ** 30).toFixed(1)} GiB RAM, ` +
    `${qemu} (TCG), Node ${process.version}`
  );
}

/** QEMU processes on the machine that are not ours: they share the two cores with the benchmark. */
function otherQemus(root: string): string {
  const out = spawnSync('ps', ['-eo', 'pid,args'], { encoding: 'utf8' }).stdout;
  const others = out
    .split('\n')
    .filter((line) => line.includes('qemu-system') && !line.includes(root) && !line.includes('ps -eo'));
  const load = `1-min load average ${(os.loadavg()[0] ?? 0).toFixed(1)}`;
  return others.length === 0 ? `none, ${load}` : `${others.length} (they may perturb the figures), ${load}`;
}

/** "passes seen at 0.0 (bulk), 3.1, 5.2, … s": when each pass was first seen, the first few and the last. */
function passLine(result: RunResult): string {
  const starts = result.passStartsMs.map((ms) => (ms / 1000).toFixed(1));
  const shown = starts.length <= 12 ? starts : [...starts.slice(0, 8), '…', ...starts.slice(-3)];
  return `passes first seen at ${shown.join(', ')} s (pass 1 is the bulk copy)`;
}

export async function run(args: string[]): Promise<void> {
  const options = parseOptions(args);
  const print = (line = '') => console.log(line);
  const guestImageDir = defaultGuestImageDir(process.env);
  if (!existsSync(path.join(guestImageDir, 'vmlinuz'))) {
    throw new Error(`no guest image in ${guestImageDir}: run bash scripts/setup.sh first`);
  }
  const root = mkdtempSync(path.join(os.tmpdir(), 'vmmig-bench-convergence-'));
  const exitHook = () => void killProcessesUnder(root);
  process.on('exit', exitHook);

  const hosts: Host[] = [];
  let failed = true;
  let cleaned = false;
  const cleanup = async () => {
    if (cleaned) return;
    cleaned = true;
    for (const host of hosts) await host.agent.stop().catch(() => undefined);
    const leftovers = await reapProcessesUnder(root);
    print(
      leftovers.length === 0
        ? 'stopped both agents; no QEMU process left behind'
        : `WARNING: had to kill ${leftovers.length} leftover process(es): ${leftovers.map((p) => p.pid).join(', ')}`,
    );
    const still = processesUnder(root);
    if (still.length > 0) print(`WARNING: STILL RUNNING: ${still.map((p) => p.pid).join(', ')}`);
    if (options.keep || failed) print(`agent dirs and serial consoles kept in ${root}`);
    else rmSync(root, { recursive: true, force: true });
    process.off('exit', exitHook);
  };
  addCleanup(cleanup);

  const all = contenders().filter((c) => options.only.includes(c.key));
  print(`convergence: ${summary}`);
  print(`machine: ${machineLine()}; other QEMU processes running: ${otherQemus(root)}`);
  print(`code: ${revisionLine()}`);
  print(
    `guest: ${GUEST.vcpus} vCPU, ${GUEST.memoryMb} MiB, dirtier rewriting a ${GUEST.fillMb} MiB region at ` +
      `${GUEST.dirtyRateMibs} MiB/s; max-bandwidth ${CAP_MIB_PER_S} MiB/s; no disks; both agents in this process, ` +
      `QEMU driver, migration over 127.0.0.1`,
  );
  for (const c of all) print(`  ${c.label.padEnd(18)} ${c.describe}`);
  print(
    `  none may pause the guest or use auto-converge (cluster defaults allowWorkloadDisruption and ` +
      `allowAutoConverge are false)`,
  );
  print(
    `runs: ${options.runs} per policy, a fresh guest each; Nova stopped by the bench ` +
      (options.novaSeconds > 0 ? `after ${options.novaSeconds} s` : 'never (run to its own abort)') +
      `; time = agent's QMP migrate -> first poll that sees completed/cancelled/failed`,
  );
  print();

  try {
    const started = Date.now();
    for (const name of ['host-a', 'host-b']) {
      const dir = path.join(root, name);
      const agent = await startAgent({
        name,
        host: '127.0.0.1',
        port: 0,
        dir,
        token: TOKEN,
        driver: 'qemu',
        sharedStorageDir: path.join(root, 'shared'),
        guestImageDir,
        migrationAddress: '127.0.0.1',
        networks: ['default'],
        liveness: null,
        metrics: null,
        registration: null,
        // No registration: the two agents on 127.0.0.1 are each other's migration peers.
        peers: () =>
          hosts.map((host) => ({
            id: host.agent.hostId,
            name: host.name,
            address: '127.0.0.1',
            migrationAddress: '127.0.0.1',
            agentUrl: host.agent.url,
          })),
        stopGraceMs: 3000,
        log: silentLogger,
      });
      hosts.push({ name, agent, dir, client: new AgentClient(agent.url, TOKEN) });
    }
    const [a, b] = hosts as [Host, Host];
    print(`agents: host-a ${a.agent.url}, host-b ${b.agent.url}`);

    const results: RunResult[] = [];
    for (let round = 1; round <= options.runs; round++) {
      // Rotate the order so that no policy always runs first (or right after the longest one).
      const order = all.map((_, i) => all[(i + round - 1) % all.length]!);
      for (const contender of order) {
        const id = `conv-${contender.key}-${round}`;
        const mac = `52:54:00:c0:${round.toString(16).padStart(2, '0')}:${contenderKeys.indexOf(contender.key).toString(16).padStart(2, '0')}`;
        print(`${contender.label} #${round}: booting ${id} on host-a…`);
        try {
          await bootGuest(a, id, mac);
          const result = await migrateOnce(contender, a, b, id, {
            round,
            limitSeconds: contender.key === 'nova' ? options.novaSeconds : SAFETY_LIMIT_SECONDS,
            log: print,
          });
          results.push(result);
          print(`  [${contender.key} #${round}] ${passLine(result)}`);
          if (!result.advancing)
            print(`  WARNING: the guest's heartbeat does not advance on ${result.runsOn}`);
          if (result.corruption.length > 0) print(`  WARNING: ${result.corruption.join(' | ')}`);
        } finally {
          await destroyEverywhere(hosts, id);
        }
      }
    }
    print();
    print(
      `done in ${((Date.now() - started) / 1000).toFixed(0)} s; other QEMU processes running now: ${otherQemus(root)}`,
    );
    print();
    print('every run (time = migrate -> end; dirty MiB/s = calc-dirty-rate before/during (QEMU at syncs)):');
    print(runsTable(results));
    print();
    print('medians:');
    print(summaryTable(all, results, options.novaSeconds));
    print();
    for (const line of projectionLines(all, results)) print(line);
    const { lines } = verdict(results, (GUEST.memoryMb / CAP_MIB_PER_S) * 1000);
    for (const line of lines) print(line);
    const corrupt = results.filter((r) => r.corruption.length > 0);
    print(
      corrupt.length === 0
        ? 'guest integrity: no DIRTIER CORRUPT or panic on any serial console'
        : `guest integrity: CORRUPTION in ${corrupt.map((r) => `${r.key} #${r.round}`).join(', ')}`,
    );
    const paused = results.filter((r) => r.actions.some((action) => action.type === 'pause-guest'));
    print(
      `pause: ${paused.length === 0 ? 'in no run (post-copy came first wherever it was allowed)' : `in ${paused.map((r) => `${r.key} #${r.round}`).join(', ')}`}; ` +
        `the agent's pause route is ${typeof a.client.pauseGuest === 'function' ? 'available' : 'not available'}`,
    );
    print(
      `(targets: ours completes >= ${TARGET_RATIO}x sooner than KubeVirt's default with no larger downtime, ` +
        `and within ${TARGET_FLOOR_RATIO}x of the physical floor, the guest's memory at the cap)`,
    );
    if (options.json) writeFileSync(options.json, `${JSON.stringify(results, null, 2)}\n`);
    writeFileSync(path.join(root, 'results.json'), `${JSON.stringify(results, null, 2)}\n`);
    print();
    const broken = results.filter((r) => r.outcome === 'failed');
    if (broken.length > 0) {
      throw new Error(
        `${broken.length} migration(s) failed in QEMU: ${broken.map((r) => `${r.key} #${r.round}: ${r.errorDesc}`).join('; ')}`,
      );
    }
    failed = false;
  } finally {
    await runCleanups();
  }
}
