import type { Db } from '../db/client.ts';
import { alertMoveHistory, guestsMigrating, hostsInRecentMigrations } from '../db/alert-store.ts';
import { listGuests, listHosts } from '../db/inventory.ts';
import type { Guest, Host, MigrationAlert } from '../db/schema.ts';
import { RETURN_BLOCK_S, type AlertPlanInput } from '../domain/alert-planner.ts';
import type { AlertMetricsReader } from './alert-metrics.ts';

/** Period means of a guest's usage the planner weighs for steadiness. */
export const GUEST_HISTORY_PERIODS = 6;

export interface AlertSnapshotDeps {
  db: Db;
  metrics: AlertMetricsReader;
  liveness: { onlineHostIds(): Promise<Set<string>> };
}

export interface LoadedAlertSnapshot {
  input: AlertPlanInput;
  hosts: Map<string, Host>;
  guests: Map<string, Guest>;
}

/**
 * What the planner needs for one rule, now: the inventory from PostgreSQL, which hosts are alive from etcd, and
 * the metric means from InfluxDB. Only hosts that take new guests (enabled, online, not in maintenance) can be
 * targets, and only running guests can move.
 */
export async function loadAlertSnapshot(
  deps: AlertSnapshotDeps,
  rule: MigrationAlert,
  now: Date,
): Promise<LoadedAlertSnapshot> {
  const [allHosts, running, online, migrating, settling] = await Promise.all([
    listHosts(deps.db),
    listGuests(deps.db, { status: 'running' }),
    deps.liveness.onlineHostIds(),
    guestsMigrating(deps.db),
    hostsInRecentMigrations(deps.db, new Date(now.getTime() - rule.periodS * 1000)),
  ]);
  const acceptsGuests = (h: Host) => h.enabled && h.status === 'online' && online.has(h.id);
  const [hostMeans, usage, lastMoves] = await Promise.all([
    deps.metrics.hostMeans(
      rule.metric,
      allHosts.map((h) => h.id),
      rule.periodS,
      now,
    ),
    rule.metric === 'cpu.usage_active'
      ? deps.metrics.guestUsage(
          running.map((g) => g.id),
          rule.periodS,
          GUEST_HISTORY_PERIODS,
          now,
        )
      : Promise.resolve(new Map<string, { usage: number | null; history: number[] }>()),
    alertMoveHistory(
      deps.db,
      running.map((g) => g.id),
      new Date(now.getTime() - RETURN_BLOCK_S * 1000),
    ),
  ]);
  const input: AlertPlanInput = {
    now: now.toISOString(),
    rule: {
      metric: rule.metric,
      threshold: rule.threshold,
      periodS: rule.periodS,
      ...(rule.margin !== null ? { margin: rule.margin } : {}),
      ...(rule.cooldownS !== null ? { cooldownS: rule.cooldownS } : {}),
      sourceHosts: rule.sourceHostIds,
      targetHosts: rule.targetHostIds,
      sourceGuests: rule.sourceGuestIds,
    },
    hosts: allHosts.map((h) => ({
      id: h.id,
      name: h.name,
      cpus: h.cpus,
      memoryBytes: h.memoryMb * 1024 * 1024,
      current: hostMeans.get(h.id) ?? null,
      acceptsGuests: acceptsGuests(h),
      settling: settling.has(h.id),
    })),
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
    hosts: new Map(allHosts.map((h) => [h.id, h])),
    guests: new Map(running.map((g) => [g.id, g])),
  };
}
