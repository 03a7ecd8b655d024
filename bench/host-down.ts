import { writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { Etcd3 } from 'etcd3';
import { processAlive } from '../agent/proc-stat.ts';
import { DEFAULTS, hostHealthPrefix } from '../domain/config.ts';
import { DEFAULT_HOST_DOWN_TIMINGS, fencingWaitMs } from '../domain/host-down-timing.ts';
import { DEFAULT_TIMINGS } from '../domain/live-migration.ts';
import { coldMigrationWorkflowId, hostDownWorkflowId } from '../domain/workflow-ids.ts';
import { qemuPidsOf } from '../test/helpers/qemu-pids.ts';
import { waitFor } from '../test/helpers/wait.ts';
import type { HostEvent, MigrationRow, ServerView } from './lib/api-views.ts';
import { parseFlags } from './lib/args.ts';
import { cpuBetween, cpuSnapshot } from './lib/cpu.ts';
import { runCleanups } from './lib/lifecycle.ts';
import { machineLine, revisionLine } from './lib/provenance.ts';
import type { BenchServers } from './lib/servers.ts';
import { ms, summarize, table } from './lib/stats.ts';
import { benchWorkdir } from './lib/workdir.ts';
import { guestOnAgent } from './lib/agent-guest.ts';
import { historyCounts, type HistoryCounts } from './live-migrate/history.ts';
import { startRunStack, type Orchestrator } from './live-migrate/stack.ts';

export const name = 'host-down';

export const summary =
  'SIGKILL a QEMU host (agent and QEMUs, 10 s lease): time until its shared-storage guest runs on another host';

export const usage = `npm run bench -- host-down [--rounds N] [--keep]

  --rounds N  hosts killed, each with a fresh guest (1 vCPU, 256 MiB, shared 64 MiB disk, disk test on);
              default 3. The two hosts take turns dying; the dead one's agent is restarted after each round.
  --keep      keep the temporary directory (agent logs, guest consoles) after the run`;

/** Targets and the waits of the systems we compare with (their defaults, not measured here). */
const TARGET_MEDIAN_TOTAL_MS = 25_000;
const CLOUDPODS_MS = 70_000; // lease 10 s + its 60 s wait + a ping
const MASAKARI_WAIT_MS = 180_000; // wait_period_after_service_update before it evacuates

const HOSTS = ['host-1', 'host-2'];
const POLL_MS = 100;

interface Options {
  rounds: number;
  keep: boolean;
}

function parseOptions(args: string[]): Options {
  return parseFlags({ name, usage }, args, { rounds: 3, keep: false } as Options, {
    '--rounds': { key: 'rounds', min: 1 },
    '--keep': { key: 'keep', switch: true },
  });
}

/** The orchestrator in this process with the workers' host watch, and our own view of the health keys. */
interface Stack extends Orchestrator {
  /** When the etcd watch last saw each host's health key go (host id -> epoch ms). */
  keyDeletedAt: Map<string, number>;
}

/** Our own view of the health keys: when etcd expired each lease, as a watcher learns it. */
async function watchKeyDeletions(servers: BenchServers, etcdPrefix: string) {
  const deletedAt = new Map<string, number>();
  const observer = new Etcd3({ hosts: servers.etcd.endpoints });
  const prefix = hostHealthPrefix(etcdPrefix);
  const watcher = await observer
    .watch()
    .prefix(prefix)
    .create()
    .catch((error: unknown) => {
      observer.close();
      throw error;
    });
  watcher.on('delete', (kv) => deletedAt.set(kv.key.toString().slice(prefix.length), Date.now()));
  return {
    deletedAt,
    async stop() {
      await watcher.cancel().catch(() => undefined);
      observer.close();
    },
  };
}

async function hostsView(stack: Stack): Promise<{ id: string; name: string; status: string }[]> {
  return (await stack.api<{ items: { id: string; name: string; status: string }[] }>('GET', '/v1/hosts')).body
    .items;
}

/** Polls `probe` every POLL_MS until it returns a value; the error names what was awaited. */
const waitUntil = <T>(what: string, timeoutMs: number, probe: () => Promise<T | null>): Promise<T> =>
  waitFor(what, probe, { timeoutMs, intervalMs: POLL_MS });

const serialLog = (stack: Stack, host: string, guestId: string) =>
  readFile(path.join(stack.agentDir(host), 'guests', guestId, 'serial.log'), 'latin1').catch(() => '');

async function hostEvents(stack: Stack, host: string, since: number): Promise<HostEvent[]> {
  const query = new URLSearchParams({ since: new Date(since).toISOString(), limit: '1000' });
  const { items: events } = (
    await stack.api<{ items: HostEvent[] }>('GET', `/v1/hosts/${host}/events?${query}`)
  ).body;
  return events;
}

async function eventAfter(stack: Stack, host: string, action: string, since: number, timeoutMs: number) {
  const event = await waitUntil(`${action} on ${host}`, timeoutMs, async () => {
    return (await hostEvents(stack, host, since)).find((e) => e.action === action) ?? null;
  });
  return { event, at: new Date(event.at).getTime() };
}

interface Round {
  index: number;
  victim: string;
  destination: string;
  /** Epoch ms: the agent's stop called (its QEMUs SIGKILLed right after). */
  killedAt: number;
  killMs: number;
  keyGoneMs: number;
  leaseLostMs: number;
  rescueStartMs: number;
  migrationCompletedMs: number;
  firstHeartbeatMs: number;
  advancingMs: number;
  otherCpu: number;
  diskCheck: string;
  evidence: string;
  hostDown: HistoryCounts;
  coldMigrate: HistoryCounts;
}

async function runRound(stack: Stack, index: number, print: (line?: string) => void): Promise<Round> {
  const victim = HOSTS[(index - 1) % HOSTS.length] as string;
  const guestName = `hd-bench-${index}`;
  const mac = `52:54:00:bd:00:${(index % 256).toString(16).padStart(2, '0')}`;
  const created = await stack.api<{ id?: string }>('POST', '/v1/servers', {
    name: guestName,
    host: victim,
    vcpus: 1,
    memoryMb: 256,
    diskTest: true,
    networks: [{ name: 'default', mac }],
    disks: [{ id: 'disk0', sizeMb: 64, storage: 'shared', cache: 'none' }],
  });
  if (created.status !== 202 || !created.body.id)
    throw new Error(`POST /v1/servers ${guestName}: ${created.status} ${JSON.stringify(created.body)}`);
  const guestId = created.body.id;
  await waitUntil(`${guestName} running on ${victim}`, 180_000, async () => {
    const s = (await stack.api<ServerView>('GET', `/v1/servers/${guestId}`)).body;
    if (s.status === 'error') throw new Error(`${guestName} could not start: ${s.lastError}`);
    return s.status === 'running' && s.live?.heartbeat ? s : null;
  });
  // Its disk check has run once on the victim (or the image cannot run it).
  const victimLog = await waitUntil(`the disk check of ${guestName} on ${victim}`, 90_000, async () => {
    const log = await serialLog(stack, victim, guestId);
    return /^DISK (READ .* ok|UNAVAILABLE)/m.test(log) ? log : null;
  });
  const diskTestRuns = !/^DISK UNAVAILABLE/m.test(victimLog);

  const victimDir = stack.agentDir(victim);
  const pids = await qemuPidsOf(victimDir);
  if (pids.length === 0) throw new Error(`no QEMU process found under ${victimDir}`);
  const hostId = stack.agents.get(victim)!.hostId;
  const cpuBefore = cpuSnapshot();

  // The host dies: keepalives stop (the lease is left to expire, not revoked), then its QEMUs are SIGKILLed.
  const killedAt = Date.now();
  await stack.agents.get(victim)!.stop({ leaveGuests: true });
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // Gone already.
    }
  }
  const killMs = Date.now() - killedAt;
  await waitUntil(`the QEMU processes of ${victim} gone`, 10_000, async () => {
    for (const pid of pids) if (await processAlive(pid)) return null;
    return true;
  });

  const leaseLost = await eventAfter(stack, victim, 'host_lease_lost', killedAt, 120_000);
  const rescueStart = await eventAfter(stack, victim, 'host_down_auto_migrate_start', killedAt, 120_000);
  let first: { counter: number; at: number; host: string } | null = null;
  const advancedAt = await waitUntil(
    `${guestName} running elsewhere with an advancing heartbeat`,
    180_000,
    async () => {
      const s = (await stack.api<ServerView>('GET', `/v1/servers/${guestId}`)).body;
      if (s.status !== 'running' || !s.host.name || s.host.name === victim) return null;
      const counter = (await guestOnAgent(stack, s.host.name, guestId))?.heartbeat?.counter;
      if (counter === undefined) return null;
      if (first === null || first.host !== s.host.name) {
        first = { counter, at: Date.now(), host: s.host.name };
        return null;
      }
      return counter > first.counter ? Date.now() : null;
    },
  );
  const moved = first as { counter: number; at: number; host: string } | null;
  if (moved === null) throw new Error('no heartbeat seen on the destination');
  const otherCpu = cpuBetween(cpuBefore, cpuSnapshot()).other;

  const rescue = await waitUntil(`the rescue migration of ${guestName} completed`, 60_000, async () => {
    const { items: migrations } = (
      await stack.api<{ items: MigrationRow[] }>('GET', `/v1/migrations?guest=${guestName}`)
    ).body;
    const row = migrations[0];
    if (row && ['failed', 'cancelled'].includes(row.phase))
      throw new Error(`rescue ${row.phase}: ${row.error}`);
    return row?.phase === 'completed' ? row : null;
  });
  if (rescue.kind !== 'rescue' || rescue.trigger !== 'host-down')
    throw new Error(
      `the last migration of ${guestName} is ${rescue.kind}/${rescue.trigger}, not rescue/host-down`,
    );
  const completedAt = rescue.timings.completed?.startedAt ?? Number.NaN;

  // Not timed: the guest's disk check on its new host, and the runs' histories.
  let diskCheck = 'not run (image without virtio_blk)';
  if (diskTestRuns) {
    const ok = await waitUntil(`a DISK READ ok on ${moved.host}`, 60_000, async () =>
      /^DISK READ .* ok/m.test(await serialLog(stack, moved.host, guestId)) ? true : null,
    ).catch(() => false);
    diskCheck = ok ? 'ok' : 'NO DISK READ ok within 60 s';
  }
  const bad = [await serialLog(stack, moved.host, guestId), victimLog]
    .join('\n')
    .split('\n')
    .find((l) => /DISK (CORRUPT|ERROR)|DIRTIER CORRUPT|Kernel panic/.test(l));
  if (bad) diskCheck = `FAILED: ${bad.trim()}`;

  const leaseHex = String(leaseLost.event.data.leaseId);
  const hostDownId = hostDownWorkflowId(hostId, leaseHex);
  await stack.temporal.workflow.getHandle(hostDownId).result();
  const hostDown = await historyCounts(stack.temporal, hostDownId);
  const coldMigrate = await historyCounts(
    stack.temporal,
    rescue.workflowId ?? coldMigrationWorkflowId(guestId),
  );
  const confirmed = (await hostEvents(stack, victim, killedAt)).find((e) => e.action === 'host_down');
  const evidence = ((confirmed?.data.evidence as string[] | undefined) ?? []).join('; ');

  // Back to two live hosts and no busy guest: the guest stops, the dead host's agent starts again and its
  // return run removes the stale copy there.
  const stopped = await stack.api('POST', `/v1/servers/${guestId}/stop`);
  if (stopped.status !== 202)
    print(`WARNING: stopping ${guestName}: ${stopped.status} ${JSON.stringify(stopped.body)}`);
  else
    await waitUntil(`${guestName} stopped`, 60_000, async () =>
      (await stack.api<ServerView>('GET', `/v1/servers/${guestId}`)).body.status === 'ready' ? true : null,
    );
  const restartedAt = Date.now();
  await stack.restartAgent(victim);
  await waitUntil(`${victim} online again`, 60_000, async () =>
    (await hostsView(stack)).find((h) => h.name === victim)?.status === 'online' ? true : null,
  );
  await eventAfter(stack, victim, 'host_returned', restartedAt, 60_000).catch(() =>
    print(`WARNING: no host_returned event on ${victim} within 60 s of its restart`),
  );

  const keyGoneAt = stack.keyDeletedAt.get(hostId) ?? Number.NaN;
  return {
    index,
    victim,
    destination: moved.host,
    killedAt,
    killMs,
    keyGoneMs: keyGoneAt - killedAt,
    leaseLostMs: leaseLost.at - killedAt,
    rescueStartMs: rescueStart.at - killedAt,
    migrationCompletedMs: completedAt - killedAt,
    firstHeartbeatMs: moved.at - killedAt,
    advancingMs: advancedAt - killedAt,
    otherCpu,
    diskCheck,
    evidence,
    hostDown,
    coldMigrate,
  };
}

const sec = (value: number) => (Number.isFinite(value) ? `${(value / 1000).toFixed(2)} s` : '-');

/** The phases of a round, each from the previous mark; they add up to the total. */
function phases(r: Round) {
  return {
    detection: r.leaseLostMs,
    leaseExpiry: r.keyGoneMs,
    noticed: r.leaseLostMs - r.keyGoneMs,
    fencing: r.rescueStartMs - r.leaseLostMs,
    restart: r.advancingMs - r.rescueStartMs,
    rescueRun: r.migrationCompletedMs - r.rescueStartMs,
    boot: r.firstHeartbeatMs - r.migrationCompletedMs,
    secondBeat: r.advancingMs - r.firstHeartbeatMs,
    total: r.advancingMs,
  };
}

function report(rounds: Round[], print: (line?: string) => void): void {
  print(
    table(
      [
        'round',
        'victim -> to',
        'detection',
        '(lease',
        'noticed)',
        'fence+confirm',
        'restart',
        '(rescue',
        'boot',
        '2nd HB)',
        'total',
        'other CPU',
        'disk check',
      ],
      rounds.map((r) => {
        const p = phases(r);
        return [
          String(r.index),
          `${r.victim} -> ${r.destination}`,
          sec(p.detection),
          sec(p.leaseExpiry),
          sec(p.noticed),
          sec(p.fencing),
          sec(p.restart),
          sec(p.rescueRun),
          sec(p.boot),
          sec(p.secondBeat),
          sec(p.total),
          r.otherCpu.toFixed(2),
          r.diskCheck,
        ];
      }),
    ),
  );
  print();
  const all = rounds.map(phases);
  const line = (label: string, key: keyof ReturnType<typeof phases>, what: string) => {
    const s = summarize(all.map((p) => p[key]));
    return [label, ms(s.median), `${ms(s.min)} – ${ms(s.max)}`, what];
  };
  print(
    table(
      ['phase', 'median', 'min – max', 'from -> to'],
      [
        line('detection', 'detection', 'kill -> host_lease_lost event'),
        line('  lease expiry', 'leaseExpiry', 'kill -> health key deleted (etcd watch)'),
        line('  noticed', 'noticed', 'key deleted -> host_lease_lost (watch, hostDown start, probe, event)'),
        line(
          'fencing wait + confirm',
          'fencing',
          `host_lease_lost -> host_down_auto_migrate_start (margin ${fencingWaitMs(DEFAULT_HOST_DOWN_TIMINGS)} ms, probe, plan)`,
        ),
        line('restart', 'restart', 'rescue start -> heartbeat advancing on the new host'),
        line(
          '  rescue run',
          'rescueRun',
          'rescue start -> migration row completed (coldMigrate; QEMU started)',
        ),
        line('  guest boot', 'boot', 'completed -> first heartbeat seen'),
        line('  second heartbeat', 'secondBeat', 'first heartbeat -> a higher counter'),
        line('total', 'total', 'kill -> guest running elsewhere, heartbeat advancing'),
      ],
    ),
  );
  print();
  const total = summarize(all.map((p) => p.total)).median;
  const verdict = total <= TARGET_MEDIAN_TOTAL_MS ? 'MET' : 'MISSED';
  print(`median total ${sec(total)}: target <= ${sec(TARGET_MEDIAN_TOTAL_MS)}: ${verdict}`);
  print(
    `Cloudpods (lease 10 s + 60 s + a ping) ~${sec(CLOUDPODS_MS)}: ${(CLOUDPODS_MS / total).toFixed(1)}x ours; ` +
      `Masakari's default wait alone ${sec(MASAKARI_WAIT_MS)} (before detection and restart): ${(MASAKARI_WAIT_MS / total).toFixed(1)}x ours`,
  );
  print();
  print('Counts that do not depend on the machine (per round):');
  print(
    table(
      [
        'round',
        'hostDown events',
        'activities',
        'wf tasks',
        'timers',
        'children',
        'coldMigrate events',
        'activities',
        'wf tasks',
      ],
      rounds.map((r) => [
        String(r.index),
        String(r.hostDown.events),
        String(r.hostDown.activities),
        String(r.hostDown.workflowTasks),
        String(r.hostDown.timers),
        String(r.hostDown.children),
        String(r.coldMigrate.events),
        String(r.coldMigrate.activities),
        String(r.coldMigrate.workflowTasks),
      ]),
    ),
  );
  const last = rounds.at(-1);
  if (last) {
    print(`hostDown activities: ${last.hostDown.activityNames.join(', ')}`);
    print(`coldMigrate activities: ${last.coldMigrate.activityNames.join(', ')}`);
    print(`host_down evidence: ${last.evidence}`);
  }
}

export async function run(args: string[]): Promise<void> {
  const options = parseOptions(args);
  const print = (line = '') => console.log(line);
  const { root, succeeded, track } = benchWorkdir({
    prefix: 'vmmig-bench-hd-',
    keep: options.keep,
    print,
  });

  print(`host-down: ${summary}`);
  print(`machine: ${machineLine('')}`);
  print(`code: ${revisionLine()}`);
  print(
    `settings: lease TTL ${DEFAULTS.healthTtlSeconds} s, fencing margin ${fencingWaitMs(DEFAULT_HOST_DOWN_TIMINGS)} ms, ` +
      `migration timings DEFAULT_TIMINGS (poll ${DEFAULT_TIMINGS.pollIntervalMs} ms); ${options.rounds} round(s)`,
  );
  print(`temp dir: ${root}`);
  print();

  try {
    // What a worker process runs beside its worker: production timings (fencing margin, migration polls).
    const { servers, stack: orchestrator } = await startRunStack({ root, track }, print, {
      hosts: HOSTS,
      hostWatch: DEFAULT_HOST_DOWN_TIMINGS,
    });
    const keys = track(await watchKeyDeletions(servers, orchestrator.etcdPrefix), 'etcd observer');
    const stack: Stack = { ...orchestrator, keyDeletedAt: keys.deletedAt };
    for (const host of HOSTS) {
      const res = await stack.api('POST', `/v1/hosts/${host}/auto-migrate-on-host-down`, {
        auto_migrate_on_host_down: 'enable',
      });
      if (res.status !== 200)
        throw new Error(`enabling auto-migrate on ${host}: ${res.status} ${JSON.stringify(res.body)}`);
    }
    print();

    const rounds: Round[] = [];
    for (let i = 1; i <= options.rounds; i++) {
      const round = await runRound(stack, i, print);
      rounds.push(round);
      const p = phases(round);
      print(
        `round ${i}: ${round.victim} killed (stop + SIGKILL ${ms(round.killMs)}), guest on ${round.destination}: ` +
          `detection ${sec(p.detection)}, fencing+confirm ${sec(p.fencing)}, restart ${sec(p.restart)}, ` +
          `total ${sec(p.total)}; disk check ${round.diskCheck}`,
      );
    }
    print();
    writeFileSync(path.join(root, 'results.json'), `${JSON.stringify(rounds, null, 2)}\n`);
    report(rounds, print);
    print();
    succeeded();
  } finally {
    await runCleanups();
  }
}
