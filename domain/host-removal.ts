/**
 * What keeps an admin from removing a host (`DELETE /v1/hosts/:id`, `vmctl host-delete`): anything that still
 * needs its row. A removed host's name is free again, so a reinstalled hypervisor (a new host id) can enrol under
 * it. As Cloudpods' host delete (ValidateDeleteCondition: "not an empty host"), nothing is moved or stopped for
 * the caller: each blocker names what to do first.
 */
import { isTerminalPhase } from './migration-phases.ts';

export interface HostRemovalFacts {
  host: { id: string; name: string };
  /** It holds its etcd lease: its agent runs and would register it again. */
  online: boolean;
  /** Guests whose host it is, whatever their status. */
  guests: readonly { id: string; name: string }[];
  /** Migrations from or to it (any phase; the terminal ones are history and stay). */
  migrations: readonly {
    id: string;
    phase: string;
    guestName: string;
    sourceHostId: string;
    destinationHostId: string | null;
  }[];
  /** Every alert rule, to find those that name the host as a source or target. */
  alertRules: readonly { name: string; sourceHostIds: readonly string[]; targetHostIds: readonly string[] }[];
}

export type HostRemovalBlocker =
  | { kind: 'online' }
  | { kind: 'guests'; guests: string[] }
  | { kind: 'active_migrations'; migrations: { id: string; guest: string }[] }
  | { kind: 'alert_rules'; rules: string[] };

/** Everything that blocks the removal, in the order an admin would clear it; empty: the host may go. */
export function hostRemovalBlockers(facts: HostRemovalFacts): HostRemovalBlocker[] {
  const blockers: HostRemovalBlocker[] = [];
  const { id } = facts.host;
  if (facts.online) blockers.push({ kind: 'online' });
  const active = facts.migrations.filter(
    (m) => !isTerminalPhase(m.phase) && (m.sourceHostId === id || m.destinationHostId === id),
  );
  if (active.length > 0) {
    blockers.push({
      kind: 'active_migrations',
      migrations: active.map((m) => ({ id: m.id, guest: m.guestName })),
    });
  }
  if (facts.guests.length > 0) blockers.push({ kind: 'guests', guests: facts.guests.map((g) => g.name) });
  // Dropping the host from a rule would change what the rule watches (an empty source list means every host).
  const rules = facts.alertRules.filter((r) => r.sourceHostIds.includes(id) || r.targetHostIds.includes(id));
  if (rules.length > 0) blockers.push({ kind: 'alert_rules', rules: rules.map((r) => r.name) });
  return blockers;
}

/** One sentence per blocker, each saying what to do about it. */
export function describeHostRemovalBlockers(
  hostName: string,
  blockers: readonly HostRemovalBlocker[],
): string {
  const reasons = blockers.map((b) => {
    switch (b.kind) {
      case 'online':
        return 'it is online (its agent holds its etcd lease): stop the agent first';
      case 'active_migrations':
        return `migrations involving it are active (${b.migrations.map((m) => `${m.id} of ${m.guest}`).join(', ')}): wait for them or cancel them`;
      case 'guests':
        return `guests are assigned to it (${b.guests.join(', ')}): migrate them away (vmctl host-maintenance-enter ${hostName} evacuates it)`;
      case 'alert_rules':
        return `alert rules name it as a source or target host (${b.rules.join(', ')}): change or delete them`;
    }
  });
  return `host ${hostName} cannot be removed: ${reasons.join('; ')}`;
}
