import type { Db } from '../db/client.ts';
import {
  alertMoveHistory,
  guestsMigrating,
  hostsInRecentMigrations,
  runningGuestsToPlan,
  type GuestToPlan,
} from '../db/alert-store.ts';
import { listHosts } from '../db/inventory.ts';
import type { Host, MigrationAlert } from '../db/schema.ts';
import { hostsToRelieve, RETURN_BLOCK_S, type AlertPlanInput } from '../domain/alert-planner.ts';
import type { AlertMetricsReader, PeriodMeans } from './alert-metrics.ts';

/** Period means before the current one the planner weighs for steadiness, of guests and of hosts alike. */
export const GUEST_HISTORY_PERIODS = 6;

export interface AlertSnapshotDeps {
  db: Db;
  metrics: AlertMetricsReader;
  liveness: { onlineHostIds(): Promise<Set<string>> };
}

export interface LoadedAlertSnapshot {
  input: AlertPlanInput;
  /** How long each read took, ms (what a slow cycle's log line shows). */
  readMs: Record<
    | 'hosts'
    | 'guests'
    | 'liveness'
    | 'migrating'
    | 'settling'
    | 'hostMetrics'
    | 'moveHistory'
    | 'guestMetrics',
    number
  >;
  hosts: Map<string, Host>;
  guests: Map<string, GuestToPlan>;
}

/**
 * What the planner needs for one rule, now: the inventory from PostgreSQL, which hosts are alive from etcd, and
 * the metric means from InfluxDB. Only hosts that take new guests (enabled, online, not in maintenance) can be
 * targets, and only running guests can move. The guests' usage is read only when a host is to be relieved.
 */
export async function loadAlertSnapshot(
  deps: AlertSnapshotDeps,
  rule: MigrationAlert,
  now: Date,
): Promise<LoadedAlertSnapshot> {
  const readMs: LoadedAlertSnapshot['readMs'] = {
    hosts: 0,
    guests: 0,
    liveness: 0,
    migrating: 0,
    settling: 0,
    hostMetrics: 0,
    moveHistory: 0,
    guestMetrics: 0,
  };
  const timed = async <T>(what: keyof typeof readMs, work: () => Promise<T>): Promise<T> => {
    const started = performance.now();
    try {
      return await work();
    } finally {
      readMs[what] = Math.round(performance.now() - started);
    }
  };
  const rulePart: AlertPlanInput['rule'] = {
    metric: rule.metric,
    threshold: rule.threshold,
    periodS: rule.periodS,
    ...(rule.margin !== null ? { margin: rule.margin } : {}),
    ...(rule.cooldownS !== null ? { cooldownS: rule.cooldownS } : {}),
    sourceHosts: rule.sourceHostIds,
    targetHosts: rule.targetHostIds,
    sourceGuests: rule.sourceGuestIds,
  };
  const isCpu = rule.metric === 'cpu.usage_active';
  // Each read starts as soon as what it needs is known, so the longest chain, not the slowest of each round, sets
  // the cycle's pace.
  const hostsRead = timed('hosts', () => listHosts(deps.db));
  const runningRead = timed('guests', () => runningGuestsToPlan(deps.db));
  const onlineRead = timed('liveness', () => deps.liveness.onlineHostIds());
  const migratingRead = timed('migrating', () => guestsMigrating(deps.db));
  const settlingRead = timed('settling', () =>
    hostsInRecentMigrations(deps.db, new Date(now.getTime() - rule.periodS * 1000)),
  );
  // A cpu rule's targets are weighed by their own series: their history comes with the means, in one read.
  const seriesRead = hostsRead.then((allHosts) =>
    timed('hostMetrics', () =>
      deps.metrics.hostUsage(
        rule.metric,
        allHosts.map((h) => h.id),
        rule.periodS,
        isCpu ? GUEST_HISTORY_PERIODS : 0,
        now,
      ),
    ),
  );
  const movesRead = runningRead.then((running) =>
    timed('moveHistory', () =>
      alertMoveHistory(
        deps.db,
        running.map((g) => g.id),
        new Date(now.getTime() - RETURN_BLOCK_S * 1000),
      ),
    ),
  );
  const hostsRelieved = Promise.all([hostsRead, onlineRead, settlingRead, seriesRead]).then(
    ([allHosts, online, settling, series]) => {
      const acceptsGuests = (h: Host) => h.enabled && h.status === 'online' && online.has(h.id);
      const hosts: AlertPlanInput['hosts'] = allHosts.map((h) => ({
        id: h.id,
        name: h.name,
        cpus: h.cpus,
        memoryBytes: h.memoryMb * 1024 * 1024,
        current: series.get(h.id)?.usage ?? null,
        ...(isCpu ? { history: series.get(h.id)?.history ?? [] } : {}),
        acceptsGuests: acceptsGuests(h),
        settling: settling.has(h.id),
      }));
      return { hosts, relieving: hostsToRelieve(rulePart, hosts) };
    },
  );
  // Guests' series are the costly read (2.9 s for 20,000 guests): only a cycle with a host to relieve reads any,
  // and only what the hosts it relieves wrote, selected by their few ids (1,000 guests' ids matched against every
  // guest series took 3.7 s). A guest that arrived within the history shows its time on the host only.
  const usageRead = Promise.all([hostsRelieved, runningRead]).then(([{ relieving }, running]) => {
    if (!isCpu || relieving.length === 0) return new Map<string, PeriodMeans>();
    const relievedIds = new Set(relieving.map((h) => h.id));
    return timed('guestMetrics', () =>
      deps.metrics.guestUsage(
        running.filter((g) => relievedIds.has(g.hostId)).map((g) => g.id),
        rule.periodS,
        GUEST_HISTORY_PERIODS,
        now,
        [...relievedIds],
      ),
    );
  });
  const [allHosts, running, migrating, lastMoves, { hosts }, usage] = await Promise.all([
    hostsRead,
    runningRead,
    migratingRead,
    movesRead,
    hostsRelieved,
    usageRead,
  ]);
  const input: AlertPlanInput = {
    now: now.toISOString(),
    rule: rulePart,
    hosts,
    guests: running.map((g) => ({
      id: g.id,
      name: g.name,
      hostId: g.hostId,
      vcpus: g.vcpus,
      memoryMb: g.memoryMb,
      usage: usage.get(g.id)?.usage ?? null,
      history: usage.get(g.id)?.history ?? [],
      lastMigratedAt: lastMoves.get(g.id)?.lastAt.toISOString() ?? null,
      leftHosts: (lastMoves.get(g.id)?.left ?? []).map((left) => ({
        host: left.host,
        at: left.at.toISOString(),
      })),
      migrating: migrating.has(g.id),
    })),
  };
  return {
    input,
    readMs,
    hosts: new Map(allHosts.map((h) => [h.id, h])),
    guests: new Map(running.map((g) => [g.id, g])),
  };
}
