/**
 * When a host agent that cannot renew its liveness lease must stop (fence) its own guests.
 *
 * The orchestrator restarts a lost host's shared-storage guests elsewhere once the host's key has
 * expired (plus a margin), so the fence must be over before etcd can expire the lease. etcd sets a
 * lease's expiry to TTL after it *processes* a grant or keepalive, which is never before the agent
 * *sent* it: counting from the send time of the last renewal that etcd acknowledged gives a clock
 * that can only be early, never late, whatever the network delay or an etcd stall.
 */

/**
 * The fence starts at 60 % of the TTL after the last acknowledged renewal was sent. The other 40 %
 * (4 s of the default 10 s) are for the timer to run late on a busy agent and for SIGKILLed QEMUs to
 * exit; a KVM guest with much memory can take a second or two to be torn down.
 */
export const FENCING_DEADLINE_SHARE = 0.6;

/**
 * Renewals are sent three times per deadline (every 20 % of the TTL, where etcd's Go client and the
 * etcd3 library use a third): one renewal can be lost or stall and the next one still lands before
 * the deadline, so a single slow round trip does not stop every guest of a healthy host.
 */
export const RENEWALS_PER_DEADLINE = 3;

export function fencingDeadlineMs(ttlSeconds: number): number {
  if (!Number.isInteger(ttlSeconds) || ttlSeconds < 1) {
    throw new RangeError(`the lease TTL must be a whole number of seconds >= 1, got ${ttlSeconds}`);
  }
  return Math.floor(ttlSeconds * 1000 * FENCING_DEADLINE_SHARE);
}

export function renewalIntervalMs(deadlineMs: number): number {
  return Math.max(1, Math.floor(deadlineMs / RENEWALS_PER_DEADLINE));
}

export interface FencingClock {
  /** When the last renewal (grant or keepalive) that etcd acknowledged was sent. */
  lastRenewalSentAtMs: number;
  nowMs: number;
  deadlineMs: number;
}

export function mustFence({ lastRenewalSentAtMs, nowMs, deadlineMs }: FencingClock): boolean {
  return nowMs - lastRenewalSentAtMs >= deadlineMs;
}

/** How long until mustFence turns true (0 when it already is). */
export function msUntilFence({ lastRenewalSentAtMs, nowMs, deadlineMs }: FencingClock): number {
  return Math.max(0, lastRenewalSentAtMs + deadlineMs - nowMs);
}

export interface StartupFencingInput {
  /**
   * Wall-clock send time of the previous agent's last acknowledged renewal, as it recorded it; null
   * when nothing was recorded (a fresh agent dir); NaN when a record exists but cannot be read.
   */
  lastRenewalSentAtMs: number | null;
  nowMs: number;
  deadlineMs: number;
}

export interface StartupFencing {
  fence: boolean;
  reason: string;
}

/**
 * Whether an agent starting on a dir must stop the guests a previous agent left instead of running
 * them. Past the deadline the previous lease may have expired and the guests been restarted
 * elsewhere; a record that cannot be read, or that lies in the future (the clock was set back), says
 * nothing about that, so it fences too.
 */
export function fenceAtStartup({
  lastRenewalSentAtMs,
  nowMs,
  deadlineMs,
}: StartupFencingInput): StartupFencing {
  if (lastRenewalSentAtMs === null) {
    return { fence: false, reason: 'no lease renewal was recorded here before (fresh agent dir)' };
  }
  if (!Number.isFinite(lastRenewalSentAtMs)) {
    return { fence: true, reason: "the previous agent's lease renewal record cannot be read" };
  }
  const agoMs = nowMs - lastRenewalSentAtMs;
  if (agoMs < 0) {
    return {
      fence: true,
      reason: `the previous agent's last lease renewal is recorded ${-agoMs} ms in the future (clock set back?)`,
    };
  }
  const ago = `the previous agent's last lease renewal was sent ${agoMs} ms ago`;
  return agoMs >= deadlineMs
    ? {
        fence: true,
        reason: `${ago}, past the ${deadlineMs} ms fencing deadline: its lease may have expired`,
      }
    : { fence: false, reason: `${ago}, within the ${deadlineMs} ms fencing deadline` };
}
