import type { LiveMigrateOptions } from './live-migration.ts';
import {
  callerMayAct,
  hostIsUsable,
  noPassthroughDevices,
  type Caller,
  type CheckResult,
  type GuestSnapshot,
  type HostSnapshot,
} from './prechecks.ts';

/** The options of `server-migrate`, as in the Cloudpods climc seed (001). */
export interface ColdMigrateOptions {
  preferHost: string | null;
  /** Start the guest on its new host once it is there (else it arrives `ready`, stopped). */
  autoStart: boolean;
  /** The source host is down: nothing is read from it; every disk must be on shared storage. */
  rescueMode: boolean;
}

export const DEFAULT_COLD_MIGRATE_OPTIONS: ColdMigrateOptions = {
  preferHost: null,
  autoStart: false,
  rescueMode: false,
};

/** What the pre-checks learn about the source beyond the inventory, from its agent if it answers. */
export interface SourceReach {
  /** The agent answered its health check just now. */
  agentAnswers: boolean;
  /** The answering agent holds a live copy of the guest (running, paused or incoming). */
  guestLiveThere: boolean;
}

/** Agent run states in which a QEMU of the guest exists and could run. */
const LIVE_STATES = new Set(['running', 'paused', 'incoming']);

export function holdsLiveCopy(agentRunState: string | null): boolean {
  return agentRunState !== null && LIVE_STATES.has(agentRunState);
}

/** Statuses a stopped guest has in the inventory (Cloudpods' `ready`; `stopped` from older rows). */
const STOPPED = new Set(['ready', 'stopped']);
/** A rescue takes a guest whatever it was doing on the dead host, but never one another workflow owns now. */
const OWNED_ELSEWHERE = new Set(['creating', 'deleting', 'migrating']);

const check = (name: string, ok: boolean, message: string, values: Record<string, unknown>) => ({
  name,
  ok,
  message,
  values,
});

export function guestMayMoveCold(guest: GuestSnapshot, rescueMode: boolean): CheckResult {
  const values = { status: guest.status, rescueMode };
  if (rescueMode) {
    const owned = OWNED_ELSEWHERE.has(guest.status);
    return check(
      'guest_rescuable',
      !owned,
      owned ? `guest ${guest.name} is ${guest.status}: another operation owns it` : 'guest may be rescued',
      values,
    );
  }
  const stopped = STOPPED.has(guest.status);
  return check(
    'guest_stopped',
    stopped,
    stopped
      ? 'guest is stopped'
      : `guest ${guest.name} is ${guest.status}, not stopped: stop it first, or live-migrate it`,
    values,
  );
}

/**
 * Rescue mode is for a source that is down: no live etcd lease, and an agent that does not answer or answers
 * without a live copy of the guest (it fenced itself when it lost the lease). A host holding the lease, or an
 * agent still running the guest, would run it twice once it starts elsewhere.
 */
export function sourceIsDown(
  source: Pick<HostSnapshot, 'name' | 'online'> | undefined,
  reach: SourceReach,
): CheckResult {
  if (!source) return check('source_host_down', false, 'source host does not exist', { host: null });
  const values = { host: source.name, online: source.online, ...reach };
  if (source.online) {
    return check(
      'source_host_down',
      false,
      `source host ${source.name} holds its etcd lease: rescue mode is only for a host that is down`,
      values,
    );
  }
  if (reach.agentAnswers && reach.guestLiveThere) {
    return check(
      'source_host_down',
      false,
      `the agent of source host ${source.name} answers and still runs the guest: rescue mode is only for a host that is down`,
      values,
    );
  }
  const how = reach.agentAnswers ? 'lost its lease and fenced the guest' : 'is down';
  return check('source_host_down', true, `source host ${source.name} ${how}`, values);
}

/** Rescue reads nothing from the dead host, so every disk must live on shared storage; a cold move copies local ones. */
export function disksSurviveTheSource(guest: Pick<GuestSnapshot, 'disks'>, rescueMode: boolean): CheckResult {
  const local = guest.disks.filter((d) => d.storage === 'local').map((d) => d.id);
  const values = { localDisks: local, rescueMode };
  if (local.length === 0) return check('disks_shared', true, 'every disk is on shared storage', values);
  if (rescueMode) {
    return check(
      'disks_shared',
      false,
      `disk ${local.join(', ')} is on the down host's local storage: rescue mode needs every disk on shared storage`,
      values,
    );
  }
  return check('disks_shared', true, `local disk ${local.join(', ')} is copied to the destination`, values);
}

/** The checks that concern the guest and source of a cold or rescue migration, whatever the destination. */
export function coldMigrationChecks(input: {
  caller: Caller;
  guest: GuestSnapshot;
  source: HostSnapshot | undefined;
  options: ColdMigrateOptions;
  reach: SourceReach;
}): CheckResult[] {
  const { guest, options } = input;
  return [
    callerMayAct(input.caller, guest),
    guestMayMoveCold(guest, options.rescueMode),
    options.rescueMode ? sourceIsDown(input.source, input.reach) : hostIsUsable('source', input.source),
    disksSurviveTheSource(guest, options.rescueMode),
    noPassthroughDevices(guest),
  ];
}

/**
 * The destination's checks as placement runs them for a guest that boots afresh: no CPU model or kernel to
 * stay compatible with (Cloudpods' cold migration schedules like a new guest, less its own host).
 */
export function coldPlacementOptions(
  options: ColdMigrateOptions,
): LiveMigrateOptions & { bootsAfresh: true } {
  return {
    preferHost: options.preferHost,
    skipCpuCheck: true,
    skipKernelCheck: true,
    bootsAfresh: true,
    enableTls: false,
    quicklyFinish: false,
    maxBandwidthMb: null,
    keepDestGuestOnFailed: false,
  };
}

/** Where the guest ends: `running` when started on arrival (auto_start), else `ready` (Cloudpods: stopped). */
export function statusAfterColdMigration(started: boolean): 'running' | 'ready' {
  return started ? 'running' : 'ready';
}
