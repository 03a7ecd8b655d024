import { describe, expect, it } from 'vitest';
import type { GuestState } from '../../domain/agent-contract.ts';
import {
  DEFAULT_REPORT_INTERVAL_S,
  heartbeatRefreshS,
  hostReportSchema,
  LATE_AFTER_INTERVALS,
  reportDue,
  reportEntry,
  reportFingerprint,
  reportFreshness,
  staleReportMessage,
  type GuestReportEntry,
} from '../../domain/guest-reports.ts';

const entry = (id: string, over: Partial<GuestReportEntry> = {}): GuestReportEntry => ({
  id,
  status: 'running',
  hypervisorStatus: 'running',
  pid: 100,
  heartbeat: { counter: 1, at: '2026-12-02T10:00:00.000Z' },
  ...over,
});

describe('what a report carries', () => {
  it("keeps a guest's state but not its spec", () => {
    const state = {
      id: 'g1',
      name: 'vm-1',
      status: 'running',
      spec: { id: 'g1', name: 'vm-1', vcpus: 1, memoryMb: 256 },
      hypervisorStatus: 'running',
      pid: 42,
      heartbeat: { counter: 7, at: '2026-12-02T10:00:00.000Z' },
    } as unknown as GuestState;
    expect(reportEntry(state)).toEqual({
      id: 'g1',
      status: 'running',
      hypervisorStatus: 'running',
      pid: 42,
      heartbeat: { counter: 7, at: '2026-12-02T10:00:00.000Z' },
    });
  });

  it('is refused with the field named when malformed', () => {
    const bad = hostReportSchema.safeParse({ intervalS: 0, at: 'yesterday', guests: [{ id: '' }] });
    expect(bad.success).toBe(false);
    const paths = bad.error!.issues.map((i) => i.path.join('.'));
    expect(paths).toEqual(expect.arrayContaining(['intervalS', 'at', 'guests.0.id', 'guests.0.status']));
  });
});

describe('reportFingerprint: what counts as a change', () => {
  const base = [entry('a'), entry('b')];
  it.each([
    [
      'a heartbeat',
      [entry('a', { heartbeat: { counter: 9, at: '2026-12-02T10:00:09.000Z' } }), entry('b')],
      false,
    ],
    ['the order of the guests', [entry('b'), entry('a')], false],
    [
      'a first heartbeat (a guest just started or arrived)',
      [entry('a', { heartbeat: null }), entry('b')],
      true,
    ],
    ['a status', [entry('a', { status: 'paused' }), entry('b')], true],
    ["QEMU's run state", [entry('a', { hypervisorStatus: 'postmigrate' }), entry('b')], true],
    ['a new process', [entry('a', { pid: 101 }), entry('b')], true],
    ['a guest gone', [entry('a')], true],
    ['a guest more', [...base, entry('c')], true],
  ])('%s changes it: %s', (_what, next, changes) => {
    expect(reportFingerprint(next) !== reportFingerprint(base)).toBe(changes);
  });
});

describe('reportDue: when the agent sends', () => {
  const sent = { fingerprint: 'x', lastSentFingerprint: 'x', lastSentAtMs: 1_000, intervalMs: 10_000 };
  it.each([
    ['nothing sent yet', { ...sent, lastSentAtMs: null, lastSentFingerprint: null, nowMs: 1_000 }, 'changed'],
    ['a change, however soon', { ...sent, fingerprint: 'y', nowMs: 1_001 }, 'changed'],
    ['no change within the interval', { ...sent, nowMs: 10_999 }, null],
    ['no change, the interval passed', { ...sent, nowMs: 11_000 }, 'interval'],
  ] as const)('%s: %s', (_what, input, due) => {
    expect(reportDue(input)).toBe(due);
  });
});

describe('reportFreshness: late after three of its own intervals', () => {
  const last = new Date('2026-12-02T10:00:00.000Z');
  const at = (seconds: number) => last.getTime() + seconds * 1000;
  it('never reported', () => {
    expect(reportFreshness(null, 10, at(0))).toEqual({ state: 'never' });
    expect(staleReportMessage('h1', { state: 'never' })).toBe('host h1 has not reported its guests yet');
  });
  it.each([
    [10, 30, 'current'],
    [10, 31, 'late'],
    [2, 6, 'current'],
    [2, 7, 'late'],
    [null, LATE_AFTER_INTERVALS * DEFAULT_REPORT_INTERVAL_S, 'current'],
    [null, LATE_AFTER_INTERVALS * DEFAULT_REPORT_INTERVAL_S + 1, 'late'],
  ])('interval %s s, %s s after the last: %s', (interval, after, state) => {
    expect(reportFreshness(last, interval, at(after)).state).toBe(state);
  });
  it('says since when', () => {
    const late = reportFreshness(last, 10, at(45));
    expect(late).toEqual({ state: 'late', lastReportAt: last, lateByS: 15 });
    expect(staleReportMessage('h1', late)).toBe('host h1 has not reported since 2026-12-02T10:00:00.000Z');
    expect(staleReportMessage('h1', reportFreshness(last, 10, at(5)))).toBeNull();
  });
  it("rewrites a stored heartbeat alone once every six of the host's intervals", () => {
    expect(heartbeatRefreshS({ intervalS: 10 })).toBe(60);
    expect(heartbeatRefreshS({ intervalS: 2 })).toBe(12);
  });
});
