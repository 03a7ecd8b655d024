import type { Db } from '../db/client.ts';
import { hostNamesIncludingRemoved } from '../db/host-removal-store.ts';
import { findGuest, guestsByIds } from '../db/inventory.ts';
import { migrationEvents } from '../db/migration-store.ts';
import type { Migration } from '../db/schema.ts';
import { isTerminalPhase } from '../domain/migration-phases.ts';

export const migrationPath = (id: string) => `/v1/migrations/${id}`;
export const migrationGroupPath = (groupId: string) => `/v1/migrations/groups/${groupId}`;

export function migrationView(m: Migration, hostNames: Map<string, string>, guestName?: string) {
  return {
    id: m.id,
    kind: m.kind,
    guest: { id: m.guestId, name: guestName ?? null },
    source: { id: m.sourceHostId, name: hostNames.get(m.sourceHostId) ?? null },
    destination: m.destinationHostId
      ? { id: m.destinationHostId, name: hostNames.get(m.destinationHostId) ?? null }
      : null,
    trigger: m.trigger,
    groupId: m.groupId,
    phase: m.phase,
    options: m.options,
    /** The cluster config and policy as resolved when the migration started, and the plan it ran. */
    resolvedPolicy: m.resolvedPolicy,
    progress: m.progress,
    timings: m.timings,
    checks: m.checks,
    error: m.error,
    workflowId: m.workflowId,
    /** Who asked: `{by, role, tokenId?}`; null on rows from before it was recorded. */
    requestedBy: m.requestedBy,
    requestedAt: m.requestedAt,
    finishedAt: m.finishedAt,
  };
}

/** The names of the hosts these migrations name, removed hosts too: their finished migrations keep naming them. */
export const hostNamesOf = (db: Db, rows: readonly Migration[]) =>
  hostNamesIncludingRemoved(
    db,
    rows.flatMap((m) => (m.destinationHostId ? [m.sourceHostId, m.destinationHostId] : [m.sourceHostId])),
  );

/** One migration as GET /v1/migrations/:id shows it: the record and its events, oldest first. */
export async function migrationDetail(db: Db, row: Migration, guestName?: string) {
  const [names, events, guest] = await Promise.all([
    hostNamesOf(db, [row]),
    migrationEvents(db, row.id),
    guestName === undefined ? findGuest(db, row.guestId) : undefined,
  ]);
  return {
    ...migrationView(row, names, guestName ?? guest?.name),
    events: events.map((e) => ({
      at: e.at,
      type: e.type,
      level: e.level,
      message: e.message,
      data: e.data,
      requestedBy: e.requestedBy,
    })),
  };
}

/** A with_same_labels request's migrations, each guest's outcome. */
export async function migrationGroupView(db: Db, groupId: string, rows: Migration[]) {
  const [names, guests] = await Promise.all([
    hostNamesOf(db, rows),
    guestsByIds(db, [...new Set(rows.map((m) => m.guestId))]),
  ]);
  const guestNames = new Map(guests.map((g) => [g.id, g.name]));
  const views = rows.map((m) => migrationView(m, names, guestNames.get(m.guestId)));
  return {
    groupId,
    done: rows.every((m) => isTerminalPhase(m.phase)),
    migrations: views.map((m) => ({
      id: m.id,
      server: m.guest.name,
      trigger: m.trigger,
      phase: m.phase,
      source: m.source.name,
      destination: m.destination?.name ?? null,
      error: m.error,
    })),
  };
}
