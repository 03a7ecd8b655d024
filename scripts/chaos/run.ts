/**
 * `npm run chaos -- --count 300 --seed 42 --driver sim`: live migrations through the API on a stack
 * of real processes, one fault per migration at an instant the seeded PRNG picks, then the invariant
 * checked from the watcher's log, the database, the agents and Temporal. Prints the report table and
 * writes every migration's record as JSON (--out).
 *
 * Migration i draws from its own PRNG seeded with (seed, i), so `--seed S --start i --count 1`
 * replays the fault and instant of migration i of a run with seed S.
 */
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { Client, Connection } from '@temporalio/client';
import pg from 'pg';
import { migrationSlotsWorkflowId } from '../../domain/workflow-ids.ts';
import { sleep } from '../services/proc-table.ts';
import { type SlotsView } from '../../workflows/migration-slots-messages.ts';
import {
  DEFAULT_FAULT_OPTIONS,
  FAULTS,
  injectFault,
  makeRng,
  postWithApiKill,
  type ApiResult,
  type FaultContext,
  type FaultName,
  type FaultOptions,
} from './faults.ts';
import { formatReport, type MigrationRecord, type Outcome } from './report.ts';
import { ChaosStack, type Driver } from './stack.ts';
import { Watcher } from './watcher.ts';

export interface ChaosOptions {
  driver: Driver;
  count: number;
  seed: number;
  /** Index of the first migration (to replay one migration of an earlier run). */
  start: number;
  hosts: number;
  faults: FaultName[];
  /** 'random': the PRNG picks each fault; 'cycle': the faults in turn. */
  plan: 'random' | 'cycle';
  faultOptions: FaultOptions;
  /** How long a migration may take to reach a terminal phase, beyond the fault's own duration. */
  terminalTimeoutMs: number;
  /** Guest size and migration bandwidth: they set how long a migration lasts. */
  guestMemoryMb: number;
  dirtyRateMibs: number;
  maxBandwidthMb: number;
  /** Keep the data directory (logs) after the run. */
  keepData: boolean;
  out?: string;
  log: (message: string) => void;
}

export interface ChaosResult {
  records: MigrationRecord[];
  violations: number;
  expectedMs: number;
  leftoverProcesses: string[];
  root: string;
}

export function defaultOptions(driver: Driver): ChaosOptions {
  return {
    driver,
    count: 10,
    seed: 1,
    start: 0,
    hosts: 3,
    faults: [...FAULTS],
    plan: 'random',
    faultOptions: { ...DEFAULT_FAULT_OPTIONS },
    terminalTimeoutMs: 300_000,
    guestMemoryMb: driver === 'sim' ? 1024 : 256,
    dirtyRateMibs: driver === 'sim' ? 20 : 1,
    maxBandwidthMb: driver === 'sim' ? 400 : 100,
    keepData: false,
    log: (m) => console.log(`[chaos] ${m}`),
  };
}

interface GuestRef {
  id: string;
  name: string;
}

const TERMINAL = new Set(['completed', 'failed', 'cancelled']);

export async function runChaos(options: ChaosOptions): Promise<ChaosResult> {
  const log = options.log;
  const stack = await ChaosStack.start({
    driver: options.driver,
    hosts: options.hosts,
    keepData: options.keepData,
    log,
  });
  const pool = new pg.Pool({
    connectionString: stack.databaseUrl,
    max: 4,
    connectionTimeoutMillis: 2_000,
    idleTimeoutMillis: 5_000,
  });
  pool.on('error', () => undefined);
  const connection = await Connection.connect({ address: stack.temporal.address });
  const temporal = new Client({ connection, namespace: stack.temporal.namespace });
  const watcher = new Watcher(
    () => [...stack.agents.values()].map((a) => ({ name: a.name, url: a.url, dir: a.dir })),
    (name) => stack.agentAuth(name),
    options.driver,
  );
  watcher.start();
  const records: MigrationRecord[] = [];
  let expectedMs = 0;
  let leftoverProcesses: string[] = [];
  const root = stack.root;
  try {
    const h = new Harness(stack, pool, temporal, watcher, options);
    let guest = await h.createGuest(`chaos-cal`);
    // Calibration: one migration without a fault says how long one takes on this machine.
    const calibration = await h.migrate(guest, -1, 'none', 0);
    expectedMs = calibration.switchoverMs ?? calibration.timeToTerminalMs ?? 5_000;
    log(`calibration: switch-over ${expectedMs} ms after the POST (${calibration.outcome})`);
    if (calibration.violations.length > 0) guest = await h.createGuest(`chaos-cal2`);
    h.expectedMs = expectedMs;
    for (let i = options.start; i < options.start + options.count; i++) {
      const rng = makeRng(options.seed * 1_000_003 + i);
      // The first draw picks the fault in both plans, so that the instants of migration i do not
      // depend on the plan.
      const pick = rng();
      const fault =
        options.plan === 'cycle'
          ? (options.faults[(i - options.start) % options.faults.length] as FaultName)
          : (options.faults[Math.floor(pick * options.faults.length)] as FaultName);
      if (!(await h.usable(guest))) guest = await h.createGuest(`chaos-${options.seed}-${i}`);
      const record = await h.migrate(guest, i, fault, options.seed, rng);
      records.push(record);
      const mark = record.violations.length > 0 ? `VIOLATION ${record.violations.join(' | ')}` : 'ok';
      log(
        `#${i} ${fault}: ${record.outcome} (${record.phase}) in ${record.timeToTerminalMs ?? '-'} ms — ${mark}`,
      );
    }
  } finally {
    await watcher.stop();
    await connection.close().catch(() => undefined);
    await pool.end().catch(() => undefined);
    const still = await stack.stop();
    leftoverProcesses = still.map((p) => `${p.pid} ${p.cmdline.slice(0, 120)}`);
    if (leftoverProcesses.length > 0) log(`LEFTOVER PROCESSES: ${leftoverProcesses.join('; ')}`);
    else log('stopped: no process of the chaos stack is left');
  }
  const violations = records.reduce((n, r) => n + r.violations.length, 0);
  if (options.out) {
    fs.mkdirSync(path.dirname(path.resolve(options.out)), { recursive: true });
    fs.writeFileSync(
      options.out,
      `${JSON.stringify({ options: { ...options, log: undefined }, expectedMs, records, leftoverProcesses }, null, 2)}\n`,
    );
  }
  return { records, violations, expectedMs, leftoverProcesses, root };
}

class Harness {
  expectedMs = 5_000;
  private hostIds = new Map<string, string>();
  private clusterId: string | null = null;

  constructor(
    private readonly stack: ChaosStack,
    private readonly pool: pg.Pool,
    private readonly temporal: Client,
    private readonly watcher: Watcher,
    private readonly options: ChaosOptions,
  ) {}

  async api(method: string, urlPath: string, body?: unknown, timeoutMs = 30_000): Promise<ApiResult> {
    const res = await fetch(`${this.stack.apiUrl}${urlPath}`, {
      method,
      headers: {
        authorization: `Bearer ${this.stack.apiToken}`,
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(timeoutMs),
    });
    const text = await res.text();
    let json: Record<string, unknown> = {};
    try {
      json = text ? (JSON.parse(text) as Record<string, unknown>) : {};
    } catch {
      json = { text };
    }
    return { status: res.status, body: json };
  }

  /** An API call that survives an API or database outage: retried until answered (not 5xx). */
  private async apiPatient(method: string, urlPath: string, body?: unknown): Promise<ApiResult> {
    const deadline = Date.now() + 180_000;
    for (;;) {
      try {
        const res = await this.api(method, urlPath, body);
        if (res.status < 500 || Date.now() > deadline) return res;
      } catch (error) {
        if (Date.now() > deadline) throw error;
      }
      await sleep(500);
    }
  }

  async query<T extends pg.QueryResultRow>(sql: string, params: unknown[] = []): Promise<T[] | null> {
    try {
      return (await this.pool.query<T>(sql, params)).rows;
    } catch {
      return null;
    }
  }

  /** The same query, retried while PostgreSQL is down (up to 3 minutes). */
  async queryPatient<T extends pg.QueryResultRow>(sql: string, params: unknown[] = []): Promise<T[]> {
    const deadline = Date.now() + 180_000;
    for (;;) {
      const rows = await this.query<T>(sql, params);
      if (rows) return rows;
      if (Date.now() > deadline) throw new Error(`database unreachable for 3 minutes: ${sql}`);
      await sleep(500);
    }
  }

  private async hostNames(): Promise<Map<string, string>> {
    const rows = await this.queryPatient<{ id: string; name: string; cluster_id: string }>(
      'SELECT id, name, cluster_id FROM hosts',
    );
    for (const r of rows) {
      this.hostIds.set(r.name, r.id);
      this.clusterId ??= r.cluster_id;
    }
    return new Map(rows.map((r) => [r.id, r.name]));
  }

  async createGuest(name: string): Promise<GuestRef> {
    const hosts = this.stack.agentNames();
    await this.stack.waitHostsOnline(hosts, 180_000);
    const host = hosts[Math.floor(Math.random() * hosts.length)] as string;
    const mac = `52:54:00:${[0, 0, 0]
      .map(() =>
        Math.floor(Math.random() * 256)
          .toString(16)
          .padStart(2, '0'),
      )
      .join(':')}`;
    const res = await this.apiPatient('POST', '/v1/servers', {
      name,
      host,
      vcpus: 1,
      memoryMb: this.options.guestMemoryMb,
      dirtyRateMibs: this.options.dirtyRateMibs,
      disks: [{ id: 'disk0', sizeMb: 64, storage: 'shared', cache: 'none' }],
      networks: [{ name: 'default', mac }],
      diskTest: this.options.driver === 'qemu',
    });
    if (res.status !== 202)
      throw new Error(`POST /v1/servers ${name}: ${res.status} ${JSON.stringify(res.body)}`);
    const id = (res.body as { id: string }).id;
    const deadline = Date.now() + (this.options.driver === 'qemu' ? 180_000 : 60_000);
    for (;;) {
      const latest = this.watcher.latest(id).get(host);
      const [row] = await this.queryPatient<{ status: string }>('SELECT status FROM guests WHERE id = $1', [
        id,
      ]);
      if (latest?.state === 'running' && row?.status === 'running') break;
      if (Date.now() > deadline) throw new Error(`guest ${name} not running on ${host} after creation`);
      await sleep(250);
    }
    if (this.options.driver === 'qemu') await this.waitHeartbeat(id, host);
    this.options.log(`guest ${name} (${id}) running on ${host}`);
    return { id, name };
  }

  /** qemu: the guest booted far enough to print its heartbeat (the migration would else carry a booting kernel). */
  private async waitHeartbeat(id: string, host: string): Promise<void> {
    const deadline = Date.now() + 120_000;
    while (Date.now() < deadline) {
      const log = this.serialLog(host, id);
      if (/^HB \d+/m.test(log) && (/^DISK (READ|UNAVAILABLE)/m.test(log) || Date.now() > deadline - 90_000))
        return;
      await sleep(500);
    }
  }

  private serialLog(host: string, id: string): string {
    try {
      return fs.readFileSync(path.join(this.stack.agent(host).dir, 'guests', id, 'serial.log'), 'latin1');
    } catch {
      return '';
    }
  }

  /** The guest runs on exactly its database host and nothing of a migration is in flight for it. */
  async usable(guest: GuestRef): Promise<boolean> {
    const [row] = await this.queryPatient<{ status: string; host_id: string }>(
      'SELECT status, host_id FROM guests WHERE id = $1',
      [guest.id],
    );
    if (row?.status !== 'running') return false;
    // A migration row of the guest that never ended (an orphan) makes every new request a 409.
    const open = await this.queryPatient<{ id: string }>(
      "SELECT id FROM migrations WHERE guest_id = $1 AND phase NOT IN ('completed', 'failed', 'cancelled')",
      [guest.id],
    );
    if (open.length > 0) return false;
    const names = await this.hostNames();
    const host = names.get(row.host_id);
    const view = await this.agentViews(guest.id);
    const running = [...view].filter(([, s]) => s === 'running').map(([h]) => h);
    return running.length === 1 && running[0] === host;
  }

  /** GET /v1/guests/:id on every agent: host → run state ('running', other state, 'absent', 'unreachable'). */
  private async agentViews(guestId: string): Promise<Map<string, string>> {
    const out = new Map<string, string>();
    await Promise.all(
      [...this.stack.agents.values()].map(async (a) => {
        for (let attempt = 0; attempt < 3; attempt++) {
          try {
            const res = await fetch(`${a.url}/v1/guests/${guestId}`, {
              headers: this.stack.agentAuth(a.name),
              signal: AbortSignal.timeout(3_000),
            });
            if (res.status === 404) {
              await res.body?.cancel();
              out.set(a.name, 'absent');
              return;
            }
            const g = (await res.json()) as { status: string; hypervisorStatus: string | null };
            const executing =
              g.hypervisorStatus !== null ? g.hypervisorStatus === 'running' : g.status === 'running';
            out.set(a.name, executing ? 'running' : `${g.status}/${g.hypervisorStatus ?? '-'}`);
            return;
          } catch {
            await sleep(500);
          }
        }
        out.set(a.name, 'unreachable');
      }),
    );
    return out;
  }

  async migrate(
    guest: GuestRef,
    index: number,
    fault: FaultName,
    seed: number,
    rng: () => number = Math.random,
  ): Promise<MigrationRecord> {
    const names = await this.hostNames();
    const [row] = await this.queryPatient<{ host_id: string }>('SELECT host_id FROM guests WHERE id = $1', [
      guest.id,
    ]);
    const source = names.get(row?.host_id ?? '') ?? '?';
    await this.stack.waitHostsOnline(this.stack.agentNames(), 180_000);
    const others = this.stack.agentNames().filter((n) => n !== source);
    const destination = others[Math.floor(rng() * others.length)] as string;
    const notes: string[] = [];
    const requestAt = Date.now();
    const note = (message: string) => notes.push(`+${Date.now() - requestAt} ms ${message}`);
    const record: MigrationRecord = {
      index,
      seed,
      fault,
      guestId: guest.id,
      guestName: guest.name,
      source,
      destination,
      migrationId: null,
      phase: 'not-started',
      outcome: 'refused',
      timeToTerminalMs: null,
      switchoverMs: null,
      violations: [],
      suspects: [],
      crashes: [],
      notes,
    };
    let resolveId: (id: string | null) => void = () => undefined;
    const migrationId = new Promise<string | null>((resolve) => (resolveId = resolve));
    const ctx: FaultContext = {
      fault,
      stack: this.stack,
      rng,
      options: this.options.faultOptions,
      source,
      destination,
      guestId: guest.id,
      guestName: guest.name,
      expectedMs: this.expectedMs,
      requestAt,
      destinationHostId: this.hostIds.get(destination) ?? '',
      api: (method, p, body) =>
        this.api(method, p, body).catch((e: unknown) => ({
          status: 0,
          body: { error: { code: String(e) } },
        })),
      guestHostId: async () =>
        (await this.query<{ host_id: string }>('SELECT host_id FROM guests WHERE id = $1', [guest.id]))?.[0]
          ?.host_id ?? null,
      phase: async (id) =>
        (await this.query<{ phase: string }>('SELECT phase FROM migrations WHERE id = $1', [id]))?.[0]
          ?.phase ?? null,
      note,
    };
    const post = () =>
      this.api('POST', `/v1/servers/${guest.id}/live-migrate`, {
        prefer_host: destination,
        max_bandwidth_mb: this.options.maxBandwidthMb,
      });
    const run = injectFault(ctx, migrationId);
    let answer: ApiResult | null = null;
    try {
      if (fault === 'kill-api-at-post') {
        const { result, attempts } = await postWithApiKill(ctx, post);
        notes.push(...attempts);
        answer = result;
      } else {
        answer = await post();
      }
    } catch (error) {
      note(`POST failed: ${error instanceof Error ? error.message : String(error)}`);
    }
    const errorBody = (answer?.body.error ?? {}) as { code?: string; migrationId?: string; message?: string };
    const id =
      (answer?.status === 202 ? (answer.body.id as string | undefined) : undefined) ?? errorBody.migrationId;
    record.migrationId = id ?? null;
    if (answer)
      note(`POST → ${answer.status}${errorBody.code ? ` ${errorBody.code}: ${errorBody.message}` : ''}`);
    resolveId(id ?? null);

    // Wait for the terminal phase of the migration and of any other row made for this guest since the POST.
    const faultBudget =
      fault === 'sigstop-agent'
        ? this.options.faultOptions.sigstopMs
        : fault === 'postgres-down'
          ? this.options.faultOptions.postgresDownMs
          : 0;
    const deadline = Date.now() + this.options.terminalTimeoutMs + faultBudget;
    let terminalAt: number | null = null;
    let rows: { id: string; phase: string; error: string | null }[] = [];
    for (;;) {
      const read = await this.query<{ id: string; phase: string; error: string | null }>(
        `SELECT id, phase, error FROM migrations WHERE guest_id = $1 AND requested_at >= to_timestamp($2 / 1000.0)
           ORDER BY requested_at`,
        [guest.id, requestAt - 2_000],
      );
      // While PostgreSQL is down the last answer stands; "no row" counts only from a real answer.
      if (read) rows = read;
      if (!record.migrationId && rows.length > 0) record.migrationId = (rows.at(-1) as { id: string }).id;
      const main = rows.find((r) => r.id === record.migrationId);
      if (main && TERMINAL.has(main.phase) && terminalAt === null) terminalAt = Date.now();
      const allTerminal = rows.length > 0 && rows.every((r) => TERMINAL.has(r.phase));
      if (allTerminal || (read && rows.length === 0 && answer !== null && Date.now() - requestAt > 5_000))
        break;
      if (Date.now() > deadline) break;
      await sleep(100);
    }
    await run.done.catch((error: unknown) => note(`fault action failed: ${String(error)}`));
    const main = rows.find((r) => r.id === record.migrationId);
    record.phase = main?.phase ?? (rows.length === 0 ? 'no-row' : 'missing');
    record.error = main?.error ?? null;
    record.timeToTerminalMs = terminalAt === null ? null : terminalAt - requestAt;
    for (const r of rows) {
      if (!TERMINAL.has(r.phase)) {
        record.violations.push(
          `migration ${r.id} never reached a terminal phase (still ${r.phase} after ${Math.round((Date.now() - requestAt) / 1000)} s)`,
        );
      }
    }
    if (rows.length === 0 && answer?.status === 202) record.violations.push('202 but no migration row');

    // The stack whole again before looking at every agent.
    await this.stack.waitHostsOnline(this.stack.agentNames(), 180_000).catch((e: unknown) => {
      note(`hosts not all online again: ${String(e)}`);
    });
    await sleep(1_500);
    const checkedAt = Date.now();
    await this.check(record, rows, requestAt, checkedAt);
    record.outcome = outcomeOf(record, await this.eventTypes(record.migrationId), notes);
    if (record.violations.length > 0) {
      // Transient or lasting? Look again a while later.
      await sleep(10_000);
      const again: MigrationRecord = { ...record, violations: [], suspects: [], crashes: [], notes: [] };
      await this.check(again, rows, requestAt, Date.now(), false);
      notes.push(
        again.violations.length === 0
          ? 'the leftovers on hosts, reservations and slots were gone 10 s later (phases not rechecked)'
          : `10 s later still: ${again.violations.join(' | ')}`,
      );
    }
    const lastSwitch = this.watcher
      .segmentsOf(guest.id)
      .find((s) => s.host === destination && s.state === 'running' && s.firstRecv >= requestAt);
    record.switchoverMs = lastSwitch ? lastSwitch.firstRecv - requestAt : null;
    record.crashes = this.stack.crashes
      .filter((c) => c.at >= requestAt)
      .map((c) => `+${c.at - requestAt} ms ${c.what} exited unasked (${c.how}); restarted`);
    this.stack.crashes.splice(0);
    return record;
  }

  private async eventTypes(migrationId: string | null): Promise<string[]> {
    if (!migrationId) return [];
    const rows = await this.queryPatient<{ type: string }>(
      "SELECT type FROM events WHERE subject_kind = 'migration' AND subject_id = $1 ORDER BY id",
      [migrationId],
    );
    return rows.map((r) => r.type);
  }

  /** The invariant, from the watcher's log, the agents, the database and Temporal. */
  private async check(
    record: MigrationRecord,
    rows: { id: string }[],
    from: number,
    to: number,
    withWatcher = true,
  ): Promise<void> {
    const v = record.violations;
    if (withWatcher) {
      for (const o of this.watcher.overlaps(record.guestId, from, to)) {
        const span = `${o.hosts.join(' and ')} from +${o.from - from} ms to +${o.to - from} ms`;
        if (o.certain) v.push(`ran on two hosts: ${span}`);
        else record.suspects.push(`maybe on two hosts (sampling uncertainty): ${span}`);
      }
      const unknown = this.watcher.unknownMs(record.guestId, from, to);
      if (unknown > 0) record.notes.push(`watcher could not see some host for ${unknown} ms`);
    }
    const view = await this.agentViews(record.guestId);
    const running = [...view].filter(([, s]) => s === 'running').map(([h]) => h);
    const [guestRow] = await this.queryPatient<{ host_id: string; status: string }>(
      'SELECT host_id, status FROM guests WHERE id = $1',
      [record.guestId],
    );
    const names = await this.hostNames();
    const dbHost = names.get(guestRow?.host_id ?? '') ?? '?';
    record.finalHost = running.length === 1 ? running[0] : null;
    record.dbHost = dbHost;
    if (running.length === 0) {
      // A sim guest lives inside its agent process: SIGKILL of that agent is the loss of the host with
      // its guests. When the guest last ran on a host this fault killed, that is the fault, not the
      // orchestrator (which cannot keep a guest whose only host died).
      const killed = killedHostOf(record);
      const lastRun = this.watcher
        .segmentsOf(record.guestId)
        .filter((s) => s.state === 'running')
        .at(-1);
      if (this.options.driver === 'sim' && killed && lastRun?.host === killed) {
        record.lostWithHost = killed;
        record.notes.push(`guest lost with host ${killed} (sim: its guests live in the agent process)`);
      } else {
        v.push(`guest runs nowhere (agents: ${describe(view)}; database says ${dbHost})`);
      }
    }
    if (running.length > 1) v.push(`guest runs on ${running.join(' and ')} at the end`);
    if (running.length === 1 && running[0] !== dbHost)
      v.push(`guest runs on ${running[0]} but guests.host_id names ${dbHost}`);
    for (const [host, state] of view) {
      if (host === running[0] || state === 'absent' || state === 'running') continue;
      v.push(
        state === 'unreachable'
          ? `could not check ${host}: its agent does not answer`
          : `leftover on ${host}: ${state}`,
      );
    }
    if (guestRow && guestRow.status !== 'running') record.notes.push(`guests.status is ${guestRow.status}`);
    for (const { id } of rows) {
      const held = await this.queryPatient<{ host_id: string }>(
        'SELECT host_id FROM reservations WHERE migration_id = $1',
        [id],
      );
      if (held.length > 0)
        v.push(`reservation left for migration ${id} on ${names.get(held[0]?.host_id ?? '')}`);
      const slot = await this.slotOf(id);
      if (slot) v.push(`migration slot still ${slot} for ${id}`);
    }
    if (this.options.driver === 'qemu') {
      for (const host of this.stack.agentNames()) {
        const qemus = this.stack
          .qemuProcessesOf(host)
          .filter((p) => p.cmdline.includes(`/${record.guestId}/`));
        if (host !== running[0] && qemus.length > 0)
          v.push(`QEMU of the guest left on ${host} (pid ${qemus.map((p) => p.pid).join(', ')})`);
        const log = this.serialLog(host, record.guestId);
        const bad = log.split('\n').find((l) => /DISK (CORRUPT|ERROR)|DIRTIER CORRUPT|Kernel panic/.test(l));
        if (bad) v.push(`guest console on ${host}: ${bad.trim()}`);
      }
      if (running.length === 1 && withWatcher) await this.diskSelfCheck(record, running[0] as string);
    }
  }

  /** qemu: a new DISK READ ... ok on the final host's console after the migration. */
  private async diskSelfCheck(record: MigrationRecord, host: string): Promise<void> {
    const reads = () => (this.serialLog(host, record.guestId).match(/^DISK READ .* ok/gm) ?? []).length;
    if (/^DISK UNAVAILABLE/m.test(this.serialLog(host, record.guestId))) {
      record.notes.push('disk self-check unavailable in this guest image (DISK UNAVAILABLE)');
      return;
    }
    const before = reads();
    const deadline = Date.now() + 15_000;
    while (Date.now() < deadline) {
      if (reads() > before) {
        record.notes.push('disk self-check passed on the final host');
        return;
      }
      await sleep(500);
    }
    record.violations.push(`no new DISK READ ok on ${host} within 15 s`);
  }

  /** 'held' or 'queued' when the migrationSlots workflow still lists the migration, else null. */
  private async slotOf(migrationId: string): Promise<string | null> {
    if (!this.clusterId) return null;
    for (let attempt = 0; attempt < 5; attempt++) {
      try {
        const view = await this.temporal.workflow
          .getHandle(migrationSlotsWorkflowId(this.clusterId))
          .query<SlotsView>('slots');
        if (view.holders.some((h) => h.migrationId === migrationId)) return 'held';
        if (view.queue.some((h) => h.migrationId === migrationId)) return 'queued';
        return null;
      } catch (error) {
        if (String(error).includes('not found')) return null;
        await sleep(1_000);
      }
    }
    return 'unknown (slots query failed)';
  }
}

function killedHostOf(record: MigrationRecord): string | null {
  if (record.fault === 'kill-source-agent' || record.fault === 'kill-source-host-after-commit')
    return record.source;
  if (record.fault === 'kill-destination-agent') return record.destination;
  return null;
}

function describe(view: Map<string, string>): string {
  return [...view].map(([h, s]) => `${h}=${s}`).join(', ');
}

function outcomeOf(record: MigrationRecord, events: string[], notes: string[]): Outcome {
  record.events = events;
  if (!TERMINAL.has(record.phase)) return record.phase === 'no-row' ? 'refused' : 'stuck';
  const cancelAccepted = notes.some((n) => /cancel → 202/.test(n));
  if (record.phase === 'completed')
    return events.includes('rolled_forward') || cancelAccepted ? 'rolled-forward' : 'completed';
  if (record.phase === 'cancelled') return 'rolled-back';
  return 'failed';
}

// --- command line ------------------------------------------------------------------------------

function parseArgs(argv: string[]): ChaosOptions {
  const driverArg = argv[argv.indexOf('--driver') + 1];
  const driver: Driver = argv.includes('--driver') && driverArg === 'qemu' ? 'qemu' : 'sim';
  const options = defaultOptions(driver);
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    const value = argv[i + 1] ?? '';
    const num = () => {
      const n = Number(value);
      if (!Number.isFinite(n)) throw new Error(`${flag} needs a number, got '${value}'`);
      i++;
      return n;
    };
    switch (flag) {
      case '--driver':
        i++;
        break;
      case '--count':
        options.count = num();
        break;
      case '--seed':
        options.seed = num();
        break;
      case '--start':
        options.start = num();
        break;
      case '--hosts':
        options.hosts = num();
        break;
      case '--sigstop-ms':
        options.faultOptions.sigstopMs = num();
        break;
      case '--postgres-down-ms':
        options.faultOptions.postgresDownMs = num();
        break;
      case '--timeout-ms':
        options.terminalTimeoutMs = num();
        break;
      case '--memory-mb':
        options.guestMemoryMb = num();
        break;
      case '--bandwidth-mb':
        options.maxBandwidthMb = num();
        break;
      case '--faults': {
        const names = value.split(',').filter(Boolean) as FaultName[];
        for (const n of names)
          if (!(FAULTS as readonly string[]).includes(n) && n !== 'none')
            throw new Error(`unknown fault '${n}'; known: ${FAULTS.join(', ')}`);
        options.faults = names;
        i++;
        break;
      }
      case '--cycle':
        options.plan = 'cycle';
        break;
      case '--keep':
        options.keepData = true;
        break;
      case '--out':
        options.out = value;
        i++;
        break;
      default:
        throw new Error(`unknown option ${flag}`);
    }
  }
  return options;
}

async function main(): Promise<void> {
  const options = parseArgs(process.argv.slice(2));
  options.out ??= path.join('.data', 'chaos', `chaos-${options.driver}-seed${options.seed}.json`);
  let stopping = false;
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.on(sig, () => {
      if (stopping) return;
      stopping = true;
      console.error(`[chaos] ${sig}: the run stops after cleaning up (processes exit with this one)`);
      process.exit(130);
    });
  }
  const result = await runChaos(options);
  console.log(formatReport(result.records, { expectedMs: result.expectedMs }));
  console.log(`records: ${options.out}`);
  process.exit(result.violations > 0 || result.leftoverProcesses.length > 0 ? 1 : 0);
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((error: unknown) => {
    console.error(`[chaos] ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
    process.exit(2);
  });
}
