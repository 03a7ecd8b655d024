import { describe, expect, it } from 'vitest';
import {
  fenceAtStartup,
  fencingDeadlineMs,
  msUntilFence,
  mustFence,
  renewalIntervalMs,
} from '../../domain/fencing.ts';

describe('fencingDeadlineMs', () => {
  it('is 60 % of the TTL', () => {
    expect(fencingDeadlineMs(10)).toBe(6_000);
    expect(fencingDeadlineMs(3)).toBe(1_800);
    expect(fencingDeadlineMs(1)).toBe(600);
    expect(fencingDeadlineMs(60)).toBe(36_000);
  });

  it('always leaves time before the lease can expire and room for two renewals before it', () => {
    for (let ttl = 1; ttl <= 600; ttl++) {
      const deadline = fencingDeadlineMs(ttl);
      const interval = renewalIntervalMs(deadline);
      expect(deadline).toBeLessThan(ttl * 1000);
      expect(ttl * 1000 - deadline).toBeGreaterThanOrEqual(ttl * 400);
      // The renewal sent at one interval may be lost; the one at two intervals still lands first.
      expect(2 * interval).toBeLessThan(deadline);
    }
  });

  it('refuses a TTL etcd would not grant', () => {
    for (const ttl of [0, -1, 0.5, 2.5, Number.NaN, Number.POSITIVE_INFINITY]) {
      expect(() => fencingDeadlineMs(ttl)).toThrow(/whole number of seconds >= 1/);
    }
  });
});

describe('renewalIntervalMs', () => {
  it('renews three times per deadline', () => {
    expect(renewalIntervalMs(6_000)).toBe(2_000);
    expect(renewalIntervalMs(1_800)).toBe(600);
    expect(renewalIntervalMs(1_000)).toBe(333);
  });

  it('never asks for a zero interval', () => {
    expect(renewalIntervalMs(2)).toBe(1);
    expect(renewalIntervalMs(0)).toBe(1);
  });
});

describe('mustFence', () => {
  const deadlineMs = 6_000;

  it('does not fence while the last acknowledged renewal is younger than the deadline', () => {
    expect(mustFence({ lastRenewalSentAtMs: 1_000, nowMs: 1_000, deadlineMs })).toBe(false);
    expect(mustFence({ lastRenewalSentAtMs: 1_000, nowMs: 6_999, deadlineMs })).toBe(false);
  });

  it('fences from the deadline on', () => {
    expect(mustFence({ lastRenewalSentAtMs: 1_000, nowMs: 7_000, deadlineMs })).toBe(true);
    expect(mustFence({ lastRenewalSentAtMs: 1_000, nowMs: 60_000, deadlineMs })).toBe(true);
  });

  it('counts from the send time, so a late acknowledgement does not push the fence past the expiry', () => {
    // Sent at 0, acknowledged at 5 s (etcd stalled): the lease may expire at 10 s, so the fence is at 6 s,
    // not at 5 s + 6 s.
    const sentAt = 0;
    const ttlMs = 10_000;
    expect(mustFence({ lastRenewalSentAtMs: sentAt, nowMs: 6_000, deadlineMs })).toBe(true);
    expect(sentAt + deadlineMs).toBeLessThan(sentAt + ttlMs);
  });

  it('does not fence on a clock that runs backwards', () => {
    expect(mustFence({ lastRenewalSentAtMs: 10_000, nowMs: 2_000, deadlineMs })).toBe(false);
  });
});

describe('msUntilFence', () => {
  const deadlineMs = 1_800;

  it('counts down to the deadline and stays at 0 past it', () => {
    expect(msUntilFence({ lastRenewalSentAtMs: 1_000, nowMs: 1_000, deadlineMs })).toBe(1_800);
    expect(msUntilFence({ lastRenewalSentAtMs: 1_000, nowMs: 2_500, deadlineMs })).toBe(300);
    expect(msUntilFence({ lastRenewalSentAtMs: 1_000, nowMs: 2_800, deadlineMs })).toBe(0);
    expect(msUntilFence({ lastRenewalSentAtMs: 1_000, nowMs: 9_000, deadlineMs })).toBe(0);
  });

  it('agrees with mustFence', () => {
    for (let now = 0; now <= 4_000; now += 50) {
      const clock = { lastRenewalSentAtMs: 1_000, nowMs: now, deadlineMs };
      expect(msUntilFence(clock) === 0).toBe(mustFence(clock));
    }
  });
});

describe('fenceAtStartup', () => {
  const deadlineMs = 6_000;
  const nowMs = 1_700_000_000_000;

  it('starts as before on a fresh agent dir', () => {
    const decision = fenceAtStartup({ lastRenewalSentAtMs: null, nowMs, deadlineMs });
    expect(decision).toEqual({ fence: false, reason: expect.stringContaining('fresh agent dir') });
  });

  it('reattaches when the previous agent renewed within the deadline', () => {
    for (const agoMs of [0, 1, 5_999]) {
      const decision = fenceAtStartup({ lastRenewalSentAtMs: nowMs - agoMs, nowMs, deadlineMs });
      expect(decision.fence).toBe(false);
      expect(decision.reason).toBe(
        `the previous agent's last lease renewal was sent ${agoMs} ms ago, within the 6000 ms fencing deadline`,
      );
    }
  });

  it('fences from the deadline on: the lease may have expired and the guests run elsewhere', () => {
    for (const agoMs of [6_000, 9_999, 10_000, 86_400_000]) {
      const decision = fenceAtStartup({ lastRenewalSentAtMs: nowMs - agoMs, nowMs, deadlineMs });
      expect(decision.fence).toBe(true);
      expect(decision.reason).toBe(
        `the previous agent's last lease renewal was sent ${agoMs} ms ago, past the 6000 ms fencing deadline: its lease may have expired`,
      );
    }
  });

  it('fences when the record cannot be read', () => {
    for (const unreadable of [Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY]) {
      const decision = fenceAtStartup({ lastRenewalSentAtMs: unreadable, nowMs, deadlineMs });
      expect(decision).toEqual({ fence: true, reason: expect.stringContaining('cannot be read') });
    }
  });

  it('fences when the record lies in the future: how long ago it was is unknown', () => {
    const decision = fenceAtStartup({ lastRenewalSentAtMs: nowMs + 5_000, nowMs, deadlineMs });
    expect(decision).toEqual({ fence: true, reason: expect.stringContaining('5000 ms in the future') });
  });
});
