import { randomUUID } from 'node:crypto';
import { inArray } from 'drizzle-orm';
import type { FleetHostPlan } from '../../agent/fleet-plan.ts';
import type { Db } from '../../db/client.ts';
import { events, guests, hosts, migrations } from '../../db/schema.ts';
import type { GuestSpec } from '../../domain/agent-contract.ts';

/** A guest as the fleet runs it and as the inventory holds it. */
export interface SeededGuest extends GuestSpec {
  host: string;
  /** The one guest of a hot host that makes it hot (a move of it cools the host). */
  hog: boolean;
}

export interface GuestPlanOptions {
  guestsPerHost: number;
  /** Hosts that carry a hog (HOG_VCPUS nearly all busy): the alert cycle's moves. */
  hotHosts: ReadonlySet<string>;
  memoryMb: number;
  dirtyMibs: number;
}

/** A normal guest keeps 2 + dirtyMibs percent of its vCPUs busy (the sim's model: guestCpuPercent). */
const HOG_DIRTY_MIBS = 96;
const HOG_MEMORY_MB = 8192;
/** 15.7 CPUs busy: half of the smallest host (32 CPUs), and fits under the line on any host of 64 or more. */
const HOG_VCPUS = 16;

/**
 * The hosts to make hot: the smallest ones (a hog there crosses the rule's line, and moving it to a larger host
 * does not), `count` of them in index order.
 */
export function hotHostNames(plans: readonly FleetHostPlan[], count: number): Set<string> {
  const smallest = [...plans].sort((a, b) => a.cpus - b.cpus || a.index - b.index);
  return new Set(smallest.slice(0, count).map((p) => p.name));
}

function mac(n: number): string {
  const bytes = [(n >> 16) & 255, (n >> 8) & 255, n & 255].map((b) => b.toString(16).padStart(2, '0'));
  return `52:54:01:${bytes.join(':')}`;
}

/** Every host's guests: the same options, the same fleet of guests (ids are fresh). */
export function planGuests(plans: readonly FleetHostPlan[], options: GuestPlanOptions): SeededGuest[] {
  const planned: SeededGuest[] = [];
  let n = 0;
  for (const host of plans) {
    const hot = options.hotHosts.has(host.name);
    for (let g = 0; g < options.guestsPerHost; g++) {
      const hog = hot && g === options.guestsPerHost - 1;
      n++;
      planned.push({
        id: randomUUID(),
        name: `${host.name}-g${String(g + 1).padStart(2, '0')}`,
        host: host.name,
        hog,
        vcpus: hog ? HOG_VCPUS : 2,
        memoryMb: hog ? HOG_MEMORY_MB : options.memoryMb,
        disks: [],
        networks: [{ name: 'default', mac: mac(n) }],
        dirtyRateMibs: hog ? HOG_DIRTY_MIBS : options.dirtyMibs,
        fillMb: 0,
      });
    }
  }
  return planned;
}

/** `{host name: [GuestSpec…]}`, what SIM_FLEET_GUESTS_FILE holds. */
export function guestsFile(planned: readonly SeededGuest[]): Record<string, GuestSpec[]> {
  const byHost: Record<string, GuestSpec[]> = {};
  for (const { host, hog: _hog, ...spec } of planned) (byHost[host] ??= []).push(spec);
  return byHost;
}

async function inBatches<T>(items: readonly T[], size: number, write: (batch: T[]) => Promise<unknown>) {
  for (let i = 0; i < items.length; i += size) await write(items.slice(i, i + size));
}

/** The inventory rows of the guests the fleet already runs (the hosts registered themselves). */
export async function insertGuestRows(db: Db, planned: readonly SeededGuest[]): Promise<void> {
  const names = [...new Set(planned.map((g) => g.host))];
  const rows = await db
    .select({ id: hosts.id, name: hosts.name })
    .from(hosts)
    .where(inArray(hosts.name, names));
  const hostIds = new Map(rows.map((r) => [r.name, r.id]));
  await inBatches(planned, 1_000, (batch) =>
    db.insert(guests).values(
      batch.map((g) => {
        const hostId = hostIds.get(g.host);
        if (hostId === undefined) throw new Error(`host ${g.host} has not registered`);
        return {
          id: g.id,
          name: g.name,
          hostId,
          status: 'running' as const,
          vcpus: g.vcpus,
          memoryMb: g.memoryMb,
          disks: g.disks,
          networks: g.networks,
          dirtyRateMibs: g.dirtyRateMibs,
        };
      }),
    ),
  );
}

/**
 * A history to page through: `count` finished migrations over the last 30 days between the fleet's hosts,
 * each with the five events a completed live migration records.
 */
export async function insertMigrationHistory(db: Db, count: number): Promise<void> {
  const guestRows = await db.select({ id: guests.id, hostId: guests.hostId }).from(guests);
  const hostIds = [...new Set(guestRows.map((g) => g.hostId))];
  const now = Date.now();
  const rows = Array.from({ length: count }, (_, i) => {
    const guest = guestRows[i % guestRows.length]!;
    const requestedAt = new Date(now - 30 * 86_400_000 + (i * 30 * 86_400_000) / count);
    return {
      id: randomUUID(),
      kind: 'live' as const,
      guestId: guest.id,
      sourceHostId: guest.hostId,
      destinationHostId: hostIds[(i * 7919) % hostIds.length]!,
      trigger: 'manual' as const,
      phase: 'completed' as const,
      workflowId: `seeded-${i}`,
      requestedAt,
      finishedAt: new Date(requestedAt.getTime() + 12_000),
    };
  });
  await inBatches(rows, 1_000, (batch) => db.insert(migrations).values(batch));
  const types = [
    'migration_requested',
    'prechecks_passed',
    'migration_started',
    'switched_over',
    'completed',
  ];
  const eventRows = rows.flatMap((m) =>
    types.map((type, k) => ({
      at: new Date(m.requestedAt.getTime() + k * 2_000),
      subjectKind: 'migration',
      subjectId: m.id,
      type,
      message: type,
    })),
  );
  await inBatches(eventRows, 2_000, (batch) => db.insert(events).values(batch));
}
