import type { DiskSpec } from './agent-contract.ts';
import type { GuestStatus } from './guest-status.ts';

/**
 * Who moves when a host is lost. Two products' rules combined:
 *
 * - oVirt's cluster "Resilience Policy" (`MigrateOnErrorOptions`): `all` = YES "Migrate Virtual Machines"
 *   (oVirt's default), `ha-only` = HA_ONLY "Migrate Only Highly Available Virtual Machines", `none` = NO
 *   "Do Not Migrate Virtual Machines".
 * - Cloudpods' per-host flags: `auto_migrate_on_host_down` opts the host's guests into a rescue at all;
 *   `auto_migrate_on_host_shutdown` also treats a graceful agent stop as a loss, and requires the first.
 *   Cloudpods rescues every guest that is not stopped (`isNotRunningStatus`: ready, suspend) and whose disks
 *   are all on shared storage ("cannot rescue guest with local storage"), restarting it elsewhere.
 */
export const resiliencePolicies = ['all', 'ha-only', 'none'] as const;
export type ResiliencePolicy = (typeof resiliencePolicies)[number];

/** `down`: the etcd lease expired and the agent does not answer; `shutdown`: the agent stopped gracefully. */
export type HostLossCause = 'down' | 'shutdown';

export interface HostAutoMigrateFlags {
  autoMigrateOnHostDown: boolean;
  autoMigrateOnHostShutdown: boolean;
}

export interface HostDownGuest {
  id: string;
  name: string;
  status: GuestStatus;
  highlyAvailable: boolean;
  disks: DiskSpec[];
}

export interface RescueDecision {
  guestId: string;
  name: string;
  move: boolean;
  reason: string;
}

export interface HostDownInput {
  policy: ResiliencePolicy;
  cause: HostLossCause;
  host: HostAutoMigrateFlags;
  guests: HostDownGuest[];
}

/**
 * Statuses that keep a guest where it is, and why. Cloudpods leaves stopped guests (ready) alone; the others
 * belong to a workflow that is running now, and a rescue racing it would run the guest twice or resurrect
 * one being deleted. Every other status (running, error) is rescued: Cloudpods rescues any guest not
 * stopped, and a guest in error on a lost host is only reachable again from its shared disks.
 */
const STAYS: Partial<Record<GuestStatus, string>> = {
  ready: 'guest was stopped (ready)',
  stopped: 'guest was stopped (stopped)',
  migrating: 'migrating: its migration workflow settles it',
  creating: 'creating: its creation workflow settles it',
  deleting: 'deleting: its deletion settles it',
};

/** Why no guest of the host moves, or null when the host and cluster allow a rescue. */
function hostStaysReason({ policy, cause, host }: HostDownInput): string | null {
  if (cause === 'shutdown' && !host.autoMigrateOnHostShutdown) {
    return 'a graceful agent shutdown is not a host failure: host flag auto_migrate_on_host_shutdown is off';
  }
  if (!host.autoMigrateOnHostDown) return 'host flag auto_migrate_on_host_down is off';
  if (policy === 'none') return 'cluster resilience policy is none (do not migrate virtual machines)';
  return null;
}

function guestStaysReason(policy: ResiliencePolicy, guest: HostDownGuest): string | null {
  const stays = STAYS[guest.status];
  if (stays) return stays;
  if (policy === 'ha-only' && !guest.highlyAvailable) {
    return 'policy ha-only and guest is not highly available';
  }
  const local = guest.disks.filter((d) => d.storage === 'local').map((d) => d.id);
  if (local.length === 1) return `local disk ${local[0]} cannot be rescued`;
  if (local.length > 1) return `local disks ${local.join(', ')} cannot be rescued`;
  return null;
}

function moveReason(policy: ResiliencePolicy, guest: HostDownGuest): string {
  const why = policy === 'ha-only' ? 'policy ha-only and guest is highly available' : 'policy all';
  return `${why}; ${guest.status} with every disk on shared storage: restarted elsewhere in rescue mode`;
}

/** One decision per guest of the lost host, in the order given, each with its reason. */
export function decideHostDownRescues(input: HostDownInput): RescueDecision[] {
  const hostReason = hostStaysReason(input);
  return input.guests.map((guest) => {
    const stays = hostReason ?? guestStaysReason(input.policy, guest);
    return {
      guestId: guest.id,
      name: guest.name,
      move: stays === null,
      reason: stays ?? moveReason(input.policy, guest),
    };
  });
}

export const hostFlagFields = {
  autoMigrateOnHostDown: 'auto_migrate_on_host_down',
  autoMigrateOnHostShutdown: 'auto_migrate_on_host_shutdown',
} as const satisfies Record<keyof HostAutoMigrateFlags, string>;

export type HostFlagField = (typeof hostFlagFields)[keyof HostAutoMigrateFlags];

/** Cloudpods' own words (PerformAutoMigrateOnHostDown) when shutdown is enabled without down. */
export const SHUTDOWN_NEEDS_DOWN = 'must enable auto_migrate_on_host_down at same time';
export const DOWN_OFF_NEEDS_SHUTDOWN_OFF =
  'must disable auto_migrate_on_host_shutdown at same time: it requires auto_migrate_on_host_down';

export type HostFlagsValidation =
  { ok: true; flags: HostAutoMigrateFlags } | { ok: false; field: HostFlagField; message: string };

/**
 * The flags after a patch (a flag left out keeps its value), or why not: shutdown requires down. Cloudpods
 * checks only the request, since climc always sends both flags; we check the result, so enabling shutdown
 * on a host whose down flag is already on is fine, and turning down off under shutdown is refused too.
 * `field` names the flag the caller must change.
 */
export function validateHostFlags(
  current: HostAutoMigrateFlags,
  patch: Partial<HostAutoMigrateFlags>,
): HostFlagsValidation {
  const flags: HostAutoMigrateFlags = {
    autoMigrateOnHostDown: patch.autoMigrateOnHostDown ?? current.autoMigrateOnHostDown,
    autoMigrateOnHostShutdown: patch.autoMigrateOnHostShutdown ?? current.autoMigrateOnHostShutdown,
  };
  if (!flags.autoMigrateOnHostShutdown || flags.autoMigrateOnHostDown) return { ok: true, flags };
  return patch.autoMigrateOnHostShutdown === true
    ? { ok: false, field: hostFlagFields.autoMigrateOnHostDown, message: SHUTDOWN_NEEDS_DOWN }
    : {
        ok: false,
        field: hostFlagFields.autoMigrateOnHostShutdown,
        message: DOWN_OFF_NEEDS_SHUTDOWN_OFF,
      };
}

export interface HostFlagChange {
  field: HostFlagField;
  from: 'enable' | 'disable';
  to: 'enable' | 'disable';
}

const word = (on: boolean) => (on ? 'enable' : 'disable');

/** The flags that differ, in Cloudpods' field names and words. */
export function hostFlagChanges(before: HostAutoMigrateFlags, after: HostAutoMigrateFlags): HostFlagChange[] {
  return (Object.keys(hostFlagFields) as (keyof HostAutoMigrateFlags)[])
    .filter((key) => before[key] !== after[key])
    .map((key) => ({ field: hostFlagFields[key], from: word(before[key]), to: word(after[key]) }));
}
