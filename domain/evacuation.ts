import type { GuestStatus } from './guest-status.ts';

/** The guest label that orders an evacuation: higher moves first (oVirt moves by priority too). */
export const EVACUATION_PRIORITY_LABEL = 'migration.priority';

export interface EvacuationGuest {
  id: string;
  name: string;
  status: GuestStatus;
  labels: Record<string, string>;
}

export type EvacuationStep =
  | { guestId: string; name: string; kind: 'live' | 'cold'; priority: number }
  | { guestId: string; name: string; kind: 'stays'; priority: number; reason: string };

export function evacuationPriority(labels: Record<string, string>): number {
  const raw = labels[EVACUATION_PRIORITY_LABEL];
  const value = raw === undefined ? 0 : Number(raw);
  return Number.isFinite(value) ? value : 0;
}

/**
 * How each guest leaves a host entering maintenance: running (or paused) guests live-migrate, stopped ones move
 * cold (their local disks copied); a guest another workflow owns stays and says why. Highest priority first, then by name, so the slots are asked for in
 * that order and the parallel limits serve the important guests first.
 */
export function planEvacuation(guests: EvacuationGuest[]): EvacuationStep[] {
  return guests
    .map((g): EvacuationStep => {
      const base = { guestId: g.id, name: g.name, priority: evacuationPriority(g.labels) };
      if (g.status === 'running') return { ...base, kind: 'live' };
      if (g.status === 'ready' || g.status === 'stopped') return { ...base, kind: 'cold' };
      if (g.status === 'migrating') {
        return { ...base, kind: 'stays', reason: 'migrating already: its migration takes it off the host' };
      }
      return { ...base, kind: 'stays', reason: `${g.status}: nothing to move until it settles` };
    })
    .sort((a, b) => b.priority - a.priority || a.name.localeCompare(b.name));
}

export interface EvacuationOutcome {
  guestId: string;
  name: string;
  kind: EvacuationStep['kind'];
  outcome: 'moved' | 'failed' | 'stays';
  destination: string | null;
  reason: string | null;
}

/** One line an operator reads: how many moved, failed and stayed, and the host's state after. */
export function evacuationSummary(hostName: string, outcomes: EvacuationOutcome[]): string {
  const count = (o: EvacuationOutcome['outcome']) => outcomes.filter((x) => x.outcome === o).length;
  const [moved, failed, stays] = [count('moved'), count('failed'), count('stays')];
  const empty = failed === 0 && stays === 0;
  return `host ${hostName}: ${moved} guest(s) moved, ${failed} failed, ${stays} could not move${empty ? '; the host is empty' : ''}`;
}
