import { z } from 'zod';
import type { GuestState } from './agent-contract.ts';

/**
 * Live state without fan-out: each agent reports what it holds (at once on a change, and every interval as its
 * heartbeat), the API keeps the last report in PostgreSQL, and every read comes from there. These are the rules of
 * what a report carries, when the agent sends one, when a row is rewritten, and when a host's reports are late.
 */

/** How often an agent reports when nothing changed; a change is reported at its next look. */
export const DEFAULT_REPORT_INTERVAL_S = 10;
/** How often the agent looks at its guests for a change to report. */
export const DEFAULT_REPORT_POLL_MS = 1_000;
/** Reports are late once this many intervals went by without one (a report lost now and then is not a fault). */
export const LATE_AFTER_INTERVALS = 3;
/**
 * A guest's row is rewritten for a new heartbeat alone only when the stored one is this many of the host's
 * intervals old. Heartbeats tick every second, so without it every report would rewrite every guest: 20,000
 * guests at a 10 s interval were 2,000 row writes a second, the fleet's largest write load, for no decision.
 */
export const HEARTBEAT_REFRESH_INTERVALS = 6;

export function heartbeatRefreshS(report: Pick<HostReport, 'intervalS'>): number {
  return report.intervalS * HEARTBEAT_REFRESH_INTERVALS;
}

export const guestReportEntrySchema = z.object({
  id: z.string().min(1).max(200),
  status: z.string().min(1).max(40),
  hypervisorStatus: z.string().max(80).nullable(),
  pid: z.number().int().nullable(),
  heartbeat: z.object({ counter: z.number().int(), at: z.iso.datetime({ offset: true }) }).nullable(),
});
export type GuestReportEntry = z.infer<typeof guestReportEntrySchema>;

export const hostReportSchema = z.object({
  /** How often this agent reports when nothing changes, in seconds. */
  intervalS: z.number().int().min(1).max(3600),
  /** When the agent took the state (its clock); rows older than what is stored are not written over. */
  at: z.iso.datetime({ offset: true }),
  /** Every guest the agent holds: a guest left out is gone from this host. */
  guests: z.array(guestReportEntrySchema).max(10_000),
});
export type HostReport = z.infer<typeof hostReportSchema>;

export function reportEntry(state: GuestState): GuestReportEntry {
  return {
    id: state.id,
    status: state.status,
    hypervisorStatus: state.hypervisorStatus,
    pid: state.pid,
    heartbeat: state.heartbeat,
  };
}

/**
 * What a change is: anything but the heartbeat's counter (which moves every second). A heartbeat that appears
 * or goes is a change: a guest just started or arrived by migration shows it is alive at once, not a minute later.
 * Order-independent.
 */
export function reportFingerprint(entries: readonly GuestReportEntry[]): string {
  return entries
    .map(
      (e) =>
        `${e.id}\u0000${e.status}\u0000${e.hypervisorStatus ?? ''}\u0000${e.pid ?? ''}\u0000${e.heartbeat ? 'hb' : ''}`,
    )
    .sort()
    .join('\u0001');
}

/** The agent sends now: something changed, or the interval passed since the last report that arrived. */
export function reportDue(input: {
  fingerprint: string;
  lastSentFingerprint: string | null;
  lastSentAtMs: number | null;
  nowMs: number;
  intervalMs: number;
}): 'changed' | 'interval' | null {
  if (input.lastSentAtMs === null || input.fingerprint !== input.lastSentFingerprint) return 'changed';
  return input.nowMs - input.lastSentAtMs >= input.intervalMs ? 'interval' : null;
}

export type ReportFreshness =
  | { state: 'current'; lastReportAt: Date }
  | { state: 'late'; lastReportAt: Date; lateByS: number }
  | { state: 'never' };

/** Whether a host's reports still come: late after LATE_AFTER_INTERVALS of its own interval without one. */
export function reportFreshness(
  lastReportAt: Date | null,
  intervalS: number | null,
  nowMs: number,
): ReportFreshness {
  if (lastReportAt === null) return { state: 'never' };
  const allowedMs = LATE_AFTER_INTERVALS * (intervalS ?? DEFAULT_REPORT_INTERVAL_S) * 1000;
  const ageMs = nowMs - lastReportAt.getTime();
  if (ageMs <= allowedMs) return { state: 'current', lastReportAt };
  return { state: 'late', lastReportAt, lateByS: Math.round((ageMs - allowedMs) / 1000) };
}

/** What a read says of a guest whose host's reports are late or never came. */
export function staleReportMessage(hostName: string, freshness: ReportFreshness): string | null {
  if (freshness.state === 'current') return null;
  if (freshness.state === 'never') return `host ${hostName} has not reported its guests yet`;
  return `host ${hostName} has not reported since ${freshness.lastReportAt.toISOString()}`;
}
