/**
 * A witness independent of the orchestrator: every 50 ms it asks every agent GET /v1/guests and
 * records, per guest and host, the run state the hypervisor reports, as segments (a state and the
 * first and last sample that saw it, each sample carrying when the request left and when the
 * answer came back). A guest is `running` on a host when QEMU's (or the sim's) run state is
 * `running`.
 *
 * An agent that does not answer (SIGSTOPped, killed, restarting) is recorded as `unknown` for every
 * guest; with the qemu driver the watcher then looks at the host's QEMU processes itself: /proc
 * finds them by their guest directory, and a guest counts as running when the CPU time of its
 * vCPU threads (`CPU n/TCG`, named by debug-threads=on) advanced since the previous look. (QMP is no
 * use here: QEMU serves one QMP client at a time and the stopped agent still holds the connection.)
 */
import fs from 'node:fs';
import { listProcesses } from '../services/proc-table.ts';
import type { Driver } from './stack.ts';

/** /proc fallback: a guest counts as running while its vCPU threads advanced within this window. */
const PROC_WINDOW_MS = 500;

export type WatchState = 'running' | 'not-running' | 'absent' | 'unknown';

export interface Segment {
  host: string;
  state: WatchState;
  /** The hypervisor status (or 'proc' detail) of the first sample. */
  detail: string;
  /** Request sent / answer received of the first and of the last sample in this state. */
  firstSent: number;
  firstRecv: number;
  lastSent: number;
  lastRecv: number;
  samples: number;
}

export interface Overlap {
  guestId: string;
  hosts: [string, string];
  /** Certain: both were running throughout [from, to]. */
  from: number;
  to: number;
  certain: boolean;
}

export interface WatchedHost {
  name: string;
  url: string;
  /** The agent's directory: where its QEMUs keep guests/<id>/ (qemu fallback). */
  dir: string;
}

interface GuestView {
  id: string;
  status: string;
  hypervisorStatus: string | null;
}

export class Watcher {
  readonly intervalMs: number;
  private readonly segments = new Map<string, Segment[]>();
  private readonly open = new Map<string, Segment>();
  private timer: NodeJS.Timeout | null = null;
  private running = false;
  private inFlight: Promise<void> | null = null;
  private readonly cpuSeen = new Map<number, { ticks: number; at: number; advancedAt: number }>();
  rounds = 0;
  unreachableSamples = 0;

  constructor(
    private readonly hosts: () => WatchedHost[],
    /** The Authorization header for the host of this name (its own credential). */
    private readonly auth: (name: string) => Record<string, string>,
    private readonly driver: Driver,
    options: { intervalMs?: number } = {},
  ) {
    this.intervalMs = options.intervalMs ?? 50;
  }

  start(): void {
    this.running = true;
    const tick = (): void => {
      if (!this.running) return;
      const started = Date.now();
      this.inFlight = this.round().finally(() => {
        this.inFlight = null;
        if (this.running)
          this.timer = setTimeout(tick, Math.max(0, this.intervalMs - (Date.now() - started)));
      });
    };
    tick();
  }

  async stop(): Promise<void> {
    this.running = false;
    if (this.timer) clearTimeout(this.timer);
    await this.inFlight;
  }

  /** Every segment of a guest (closed and open), oldest first. */
  segmentsOf(guestId: string): Segment[] {
    return [...(this.segments.get(guestId) ?? [])];
  }

  /** The latest state per host of a guest, as last sampled. */
  latest(guestId: string): Map<string, Segment> {
    const out = new Map<string, Segment>();
    for (const s of this.segments.get(guestId) ?? []) out.set(s.host, s);
    return out;
  }

  /**
   * Instants at which the guest ran on two hosts, within [from, to]. Certain: each host's run of
   * `running` samples spans [firstRecv, lastSent] for sure (running was seen at or before firstRecv
   * and at or after lastSent, with no other state seen in between); two such spans intersecting is a
   * proven double run. Possible: the looser spans [firstSent, lastRecv] intersect.
   */
  overlaps(guestId: string, from: number, to: number): Overlap[] {
    const runs = this.segmentsOf(guestId).filter(
      (s) => s.state === 'running' && s.lastRecv >= from && s.firstSent <= to,
    );
    const out: Overlap[] = [];
    for (let i = 0; i < runs.length; i++) {
      for (let j = i + 1; j < runs.length; j++) {
        const a = runs[i] as Segment;
        const b = runs[j] as Segment;
        if (a.host === b.host) continue;
        const certainFrom = Math.max(a.firstRecv, b.firstRecv);
        const certainTo = Math.min(a.lastSent, b.lastSent);
        if (certainFrom <= certainTo) {
          out.push({ guestId, hosts: [a.host, b.host], from: certainFrom, to: certainTo, certain: true });
          continue;
        }
        const looseFrom = Math.max(a.firstSent, b.firstSent);
        const looseTo = Math.min(a.lastRecv, b.lastRecv);
        if (looseFrom <= looseTo)
          out.push({ guestId, hosts: [a.host, b.host], from: looseFrom, to: looseTo, certain: false });
      }
    }
    return out;
  }

  /** Time (ms) within [from, to] during which some host of the guest could not be observed. */
  unknownMs(guestId: string, from: number, to: number): number {
    let total = 0;
    for (const s of this.segmentsOf(guestId)) {
      if (s.state !== 'unknown') continue;
      total += Math.max(0, Math.min(s.lastRecv, to) - Math.max(s.firstSent, from));
    }
    return total;
  }

  private async round(): Promise<void> {
    this.rounds++;
    const hosts = this.hosts();
    await Promise.all(hosts.map((h) => this.sampleHost(h)));
  }

  private async sampleHost(host: WatchedHost): Promise<void> {
    const sent = Date.now();
    let guests: GuestView[] | null = null;
    try {
      const res = await fetch(`${host.url}/v1/guests`, {
        headers: this.auth(host.name),
        signal: AbortSignal.timeout(400),
      });
      if (res.status === 200) guests = ((await res.json()) as { guests: GuestView[] }).guests;
      else await res.body?.cancel();
    } catch {
      guests = null;
    }
    const recv = Date.now();
    const seen = new Set<string>();
    if (guests) {
      for (const g of guests) {
        seen.add(g.id);
        const executing =
          g.hypervisorStatus !== null ? g.hypervisorStatus === 'running' : g.status === 'running';
        this.record(
          g.id,
          host.name,
          executing ? 'running' : 'not-running',
          g.hypervisorStatus ?? g.status,
          sent,
          recv,
        );
      }
      for (const id of this.knownGuests()) {
        if (!seen.has(id)) this.record(id, host.name, 'absent', 'absent', sent, recv);
      }
      return;
    }
    this.unreachableSamples++;
    if (this.driver === 'qemu') {
      for (const [id, state] of this.procView(host, recv)) {
        seen.add(id);
        // 'running' from /proc means the vCPUs advanced within the last PROC_WINDOW_MS: the guest ran
        // at some instant of [recv - window, recv], which is what a sample's [sent, recv] stands for.
        this.record(id, host.name, state, 'proc', state === 'running' ? recv - PROC_WINDOW_MS : sent, recv);
      }
    }
    for (const id of this.knownGuests()) {
      if (!seen.has(id)) this.record(id, host.name, 'unknown', 'agent unreachable', sent, recv);
    }
  }

  private knownGuests(): string[] {
    return [...this.segments.keys()];
  }

  /** qemu fallback: this host's QEMUs from /proc, running when their vCPU threads burn CPU. */
  private procView(host: WatchedHost, now: number): Map<string, WatchState> {
    const out = new Map<string, WatchState>();
    const marker = `${host.dir}/guests/`;
    for (const p of listProcesses()) {
      if (!/qemu-system/.test(p.cmdline)) continue;
      const at = p.cmdline.indexOf(marker);
      if (at < 0) continue;
      const id = p.cmdline.slice(at + marker.length).split(/[/\s,]/)[0];
      if (!id) continue;
      const ticks = vcpuTicks(p.pid);
      const previous = this.cpuSeen.get(p.pid);
      const advancedAt = previous && ticks > previous.ticks ? now : (previous?.advancedAt ?? 0);
      this.cpuSeen.set(p.pid, { ticks, at: now, advancedAt });
      // Under TCG on a busy box a vCPU thread may not be scheduled for a while: a guest counts as
      // running while its vCPUs advanced within the last 500 ms.
      const state: WatchState =
        previous === undefined ? 'unknown' : now - advancedAt <= PROC_WINDOW_MS ? 'running' : 'not-running';
      if (out.get(id) !== 'running') out.set(id, state);
    }
    return out;
  }

  private record(
    guestId: string,
    host: string,
    state: WatchState,
    detail: string,
    sent: number,
    recv: number,
  ): void {
    const key = `${guestId}\u0000${host}`;
    const current = this.open.get(key);
    if (current && current.state === state) {
      current.lastSent = sent;
      current.lastRecv = recv;
      current.samples++;
      return;
    }
    // An absent guest that was never seen on this host is not worth a segment.
    if (!current && state === 'absent') return;
    const segment: Segment = {
      host,
      state,
      detail,
      firstSent: sent,
      firstRecv: recv,
      lastSent: sent,
      lastRecv: recv,
      samples: 1,
    };
    this.open.set(key, segment);
    const list = this.segments.get(guestId) ?? [];
    list.push(segment);
    this.segments.set(guestId, list);
  }
}

/** utime + stime (clock ticks) of the QEMU's vCPU threads; of all its threads if none is named. */
function vcpuTicks(pid: number): number {
  let vcpu = 0;
  let all = 0;
  let named = false;
  let tasks: string[] = [];
  try {
    tasks = fs.readdirSync(`/proc/${pid}/task`);
  } catch {
    return 0;
  }
  for (const tid of tasks) {
    try {
      const stat = fs.readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
      const comm = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      const ticks = Number(fields[11]) + Number(fields[12]);
      all += ticks;
      if (/^CPU \d+\//.test(comm)) {
        named = true;
        vcpu += ticks;
      }
    } catch {
      // Thread gone.
    }
  }
  return named ? vcpu : all;
}
