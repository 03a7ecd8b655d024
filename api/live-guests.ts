import type { Db } from '../db/client.ts';
import { guestReportsOf } from '../db/guest-report-store.ts';
import type { Guest, GuestReport, Host } from '../db/schema.ts';
import { reportFreshness, staleReportMessage } from '../domain/guest-reports.ts';
import type { LiveGuest } from './views.ts';

/**
 * What the agents last reported of these guests, each on the host the inventory has it on: one query, whatever
 * the fleet's size, and never a call to an agent (they report on their own: domain/guest-reports.ts).
 */
export async function liveGuestsOf(
  db: Db,
  guests: readonly Pick<Guest, 'id' | 'hostId'>[],
  hostsById: ReadonlyMap<string, Host>,
  nowMs = Date.now(),
): Promise<Map<string, LiveGuest>> {
  const reports = await guestReportsOf(
    db,
    guests.map((g) => g.id),
  );
  const byHostAndGuest = new Map<string, GuestReport>(reports.map((r) => [`${r.hostId}/${r.guestId}`, r]));
  const live = new Map<string, LiveGuest>();
  for (const guest of guests) {
    const host = hostsById.get(guest.hostId);
    if (!host) continue;
    live.set(guest.id, liveGuestOn(host, byHostAndGuest.get(`${host.id}/${guest.id}`) ?? null, nowMs));
  }
  return live;
}

export function liveGuestOn(host: Host, report: GuestReport | null, nowMs: number): LiveGuest {
  const freshness = reportFreshness(host.lastReportAt, host.reportIntervalS, nowMs);
  const stale = staleReportMessage(host.name, freshness);
  if (stale !== null) return { reported: false, error: stale, lastReportAt: host.lastReportAt };
  return { reported: true, report, lastReportAt: host.lastReportAt! };
}
