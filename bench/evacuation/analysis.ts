import type { MigrationRow } from '../lib/api-views.ts';
import type { SlotLimits } from '../../domain/slots.ts';

/** One evacuation move as its migration row tells it; epoch ms on the database clock. */
export interface Move {
  migrationId: string;
  workflowId: string | null;
  guest: string;
  source: string;
  destination: string | null;
  phase: string;
  requestedAt: number;
  /** Waited for a slot (phase queued), ms; null when it got one at once. */
  queuedMs: number | null;
  /**
   * When it got its slot: the end of its queued phase, or (never queued) the end of its pre-checks, whose last
   * step took the slot. Both are the start of its preparing phase.
   */
  slotAt: number;
  /** When it entered phase completed (NaN if it did not complete). */
  completedAt: number;
  /** Its own duration: slotAt -> completedAt. */
  durationMs: number;
  /** How long each phase it went through lasted, ms. */
  phaseMs: Record<string, number>;
}

export function moveOf(row: MigrationRow): Move {
  const { timings } = row;
  const queued = timings.queued;
  const slotAt = queued?.endedAt ?? timings.preparing?.startedAt ?? timings.prechecks?.endedAt ?? Number.NaN;
  const completedAt = timings.completed?.startedAt ?? Number.NaN;
  return {
    migrationId: row.id,
    workflowId: row.workflowId,
    guest: row.guest.name ?? row.guest.id,
    source: row.source.name ?? row.source.id,
    destination: row.destination?.name ?? null,
    phase: row.phase,
    requestedAt: Date.parse(row.requestedAt),
    queuedMs: queued ? (queued.endedAt ?? Number.NaN) - queued.startedAt : null,
    slotAt,
    completedAt,
    durationMs: completedAt - slotAt,
    phaseMs: Object.fromEntries(
      Object.entries(timings).flatMap(([phase, t]) =>
        t.endedAt === undefined ? [] : [[phase, t.endedAt - t.startedAt] as const],
      ),
    ),
  };
}

/**
 * The makespan's lower bound: no schedule under the limits finishes before the cluster has done all the work
 * through its `perCluster` slots, nor before the busiest source has pushed its own through its `outboundPerNode`.
 */
export interface Bound {
  sumMs: number;
  clusterMs: number;
  busiest: { host: string; sumMs: number; boundMs: number };
  boundMs: number;
  /** Which term is the bound. */
  by: 'cluster' | 'outbound';
}

export function lowerBound(moves: readonly Move[], limits: SlotLimits): Bound {
  const done = moves.filter((m) => Number.isFinite(m.durationMs));
  const sumMs = done.reduce((sum, m) => sum + m.durationMs, 0);
  const bySource = new Map<string, number>();
  for (const m of done) bySource.set(m.source, (bySource.get(m.source) ?? 0) + m.durationMs);
  const [host, hostSum] = [...bySource].sort((a, b) => b[1] - a[1])[0] ?? ['-', 0];
  const clusterMs = sumMs / limits.perCluster;
  const busiest = { host, sumMs: hostSum, boundMs: hostSum / limits.outboundPerNode };
  return {
    sumMs,
    clusterMs,
    busiest,
    boundMs: Math.max(clusterMs, busiest.boundMs),
    by: clusterMs >= busiest.boundMs ? 'cluster' : 'outbound',
  };
}

/**
 * Where the makespan exceeds Σ durations / perCluster: the slot time no migration used, ∫ (limit − running) dt
 * over [start, end], split by stretch. limit × makespan = Σ durations + unused − overlap, so each part / limit
 * is the makespan it costs.
 */
export interface SlotTimeSplit {
  /** First maintenance request -> the first moment every cluster slot was in use (planning, pre-checks). */
  rampUp: number;
  /** From then to the last migration's slot: slots idle between one migration's end and the next one's start. */
  handOver: number;
  /** Last slot granted -> last migration completed: the queue was empty, fewer migrations than slots ran. */
  tail: number;
  /** Last migration completed -> last evacuation_completed (outcome and summary events). */
  finish: number;
  /** Running above the limit (a start stamped before the end of the move whose slot it took): subtracted. */
  overlap: number;
  /** Stretch boundaries, epoch ms. */
  rampEndAt: number;
  lastSlotAt: number;
  lastCompletedAt: number;
}

export function splitSlotTime(
  moves: readonly Move[],
  limit: number,
  startAt: number,
  endAt: number,
): SlotTimeSplit {
  const done = moves.filter((m) => Number.isFinite(m.durationMs));
  const edges = done
    .flatMap((m) => [
      { at: m.slotAt, step: 1 },
      { at: m.completedAt, step: -1 },
    ])
    .sort((a, b) => a.at - b.at || a.step - b.step);
  const lastSlotAt = Math.max(...done.map((m) => m.slotAt));
  const lastCompletedAt = Math.max(...done.map((m) => m.completedAt));
  // running(t) is a step function: integrate the slack and the excess between edges, by stretch.
  let running = 0;
  let at = startAt;
  let rampEndAt = Number.NaN;
  const split = { rampUp: 0, handOver: 0, tail: 0, finish: 0, overlap: 0 };
  const add = (from: number, to: number) => {
    if (to <= from) return;
    split.overlap += Math.max(0, running - limit) * (to - from);
    const slack = Math.max(0, limit - running);
    // Cut [from, to] at the stretch boundaries.
    const cuts = [from, rampEndAt, lastSlotAt, lastCompletedAt, to]
      .filter((c) => Number.isFinite(c) && c >= from && c <= to)
      .sort((a, b) => a - b);
    for (let i = 0; i + 1 < cuts.length; i++) {
      const [a, b] = [cuts[i] as number, cuts[i + 1] as number];
      const mid = (a + b) / 2;
      const key =
        !(mid >= rampEndAt) && mid < lastSlotAt
          ? 'rampUp'
          : mid < lastSlotAt
            ? 'handOver'
            : mid < lastCompletedAt
              ? 'tail'
              : 'finish';
      split[key] += slack * (b - a);
    }
  };
  for (const edge of edges) {
    add(at, Math.min(edge.at, endAt));
    at = Math.max(at, edge.at);
    running += edge.step;
    if (!Number.isFinite(rampEndAt) && running >= limit) rampEndAt = edge.at;
  }
  add(at, endAt);
  return { ...split, rampEndAt, lastSlotAt, lastCompletedAt };
}

/**
 * The slot hand-overs as the rows see them: the k-th migration that had to queue could start once k slots had
 * come free, so its gap is its slot time minus the k-th completion. Meaningful while the cluster limit binds.
 */
export function handOverGaps(moves: readonly Move[]): number[] {
  const done = moves.filter((m) => Number.isFinite(m.durationMs));
  const completions = done.map((m) => m.completedAt).sort((a, b) => a - b);
  const queuedStarts = done
    .filter((m) => m.queuedMs !== null)
    .map((m) => m.slotAt)
    .sort((a, b) => a - b);
  return queuedStarts.flatMap((start, k) => {
    const freed = completions[k];
    return freed === undefined ? [] : [start - freed];
  });
}

/** The most migrations that held a slot at once: in the cluster, per source and per destination. */
export function peakConcurrency(moves: readonly Move[]): {
  cluster: number;
  source: number;
  destination: number;
} {
  const done = moves.filter((m) => Number.isFinite(m.durationMs));
  const peak = (key: (m: Move) => string) => {
    let best = 0;
    const groups = new Map<string, Move[]>();
    for (const m of done) groups.set(key(m), [...(groups.get(key(m)) ?? []), m]);
    for (const group of groups.values()) {
      const edges = group
        .flatMap((m) => [
          { at: m.slotAt, step: 1 },
          { at: m.completedAt, step: -1 },
        ])
        .sort((a, b) => a.at - b.at || a.step - b.step);
      let running = 0;
      for (const edge of edges) best = Math.max(best, (running += edge.step));
    }
    return best;
  };
  return {
    cluster: peak(() => 'all'),
    source: peak((m) => m.source),
    destination: peak((m) => m.destination ?? '-'),
  };
}
