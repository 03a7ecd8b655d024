/**
 * The one-line summaries the Temporal UI shows beside each run (the start's `staticSummary`) and the details
 * line a running migration keeps current (`setCurrentDetails`), so an operator finds a run by the names
 * they know rather than by UUIDs. Names, never ids: the ids are in the search attributes.
 */

export type SummaryKind = 'live' | 'cold' | 'rescue';
export type SummaryTrigger = 'manual' | 'maintenance' | 'host-down' | 'alert' | 'affinity';

/** Where a migration goes before its pre-checks chose: the host asked for, or the scheduler's pick. */
const ANY_HOST = 'any host';

/** "demo-1: host-1 → host-3, live, manual" (→ any host while the scheduler has not chosen). */
export function migrationSummary(input: {
  guest: string;
  source: string;
  destination?: string | null;
  kind: SummaryKind;
  trigger: SummaryTrigger;
}): string {
  return `${input.guest}: ${input.source} → ${input.destination || ANY_HOST}, ${input.kind}, ${input.trigger}`;
}

/** "3 guests labelled app=web: live, manual" for a with_same_labels request. */
export function groupSummary(input: {
  guests: readonly string[];
  labels: Readonly<Record<string, string>>;
  trigger: SummaryTrigger;
}): string {
  const labels = Object.entries(input.labels)
    .map(([k, v]) => `${k}=${v}`)
    .join(',');
  const who = `${input.guests.length} guest${input.guests.length === 1 ? '' : 's'}`;
  return `${who}${labels ? ` labelled ${labels}` : ''} (${input.guests.join(', ')}): live, ${input.trigger}`;
}

/** "demo-1: create on host-1", "demo-1: stop on host-1". */
export function guestActionSummary(guest: string, action: 'create' | 'start' | 'stop', host: string): string {
  return `${guest}: ${action} on ${host}`;
}

/** "host-1: evacuate for maintenance". */
export function evacuationSummary(host: string): string {
  return `${host}: evacuate for maintenance`;
}

/** "host-1: down, rescue its guests" / "host-1: back, reconcile its guests". */
export function hostEventSummary(host: string, event: 'down' | 'back'): string {
  return event === 'down' ? `${host}: down, rescue its guests` : `${host}: back, reconcile its guests`;
}

/** "alert rule busy: cpu.usage_active.gt 60". */
export function alertCycleSummary(rule: string, condition: string): string {
  return `alert rule ${rule}: ${condition}`;
}

/** The live details line of a migration: where it stands, by names. */
export function migrationDetails(input: {
  phase: string;
  destination?: string | null;
  error?: string | null;
}): string {
  const to = input.destination ? ` → ${input.destination}` : '';
  return `${input.phase}${to}${input.error ? `: ${input.error}` : ''}`;
}
