import { describe, expect, it } from 'vitest';
import {
  hostsToRelieve,
  firingHosts,
  planAlertMoves,
  MAX_REASONS_PER_GUEST,
  type AlertPlanInput,
  type PlannerGuest,
  type PlannerHost,
  type PlannerRule,
} from '../../domain/alert-planner.ts';

const GiB = 1024 ** 3;
const NOW = '2026-12-01T00:00:00Z';

const host = (id: string, current: number | null, over: Partial<PlannerHost> = {}): PlannerHost => ({
  id,
  name: id,
  cpus: 40,
  memoryBytes: 256 * GiB,
  current,
  ...over,
});

const guest = (
  id: string,
  hostId: string,
  usage: number | null,
  over: Partial<PlannerGuest> = {},
): PlannerGuest => ({
  id,
  name: id,
  hostId,
  vcpus: 4,
  memoryMb: 4096,
  usage,
  history: [],
  lastMigratedAt: null,
  ...over,
});

const cpuRule = (over: Partial<PlannerRule> = {}): PlannerRule => ({
  metric: 'cpu.usage_active',
  threshold: 60,
  periodS: 120,
  margin: 0,
  ...over,
});

const plan = (rule: PlannerRule, hosts: PlannerHost[], guests: PlannerGuest[]) =>
  planAlertMoves({ now: NOW, rule, hosts, guests } satisfies AlertPlanInput);

describe('planAlertMoves: cpu rules', () => {
  // Cloudpods' own find_result_fail (seed 000, "自动迁移" doc, monitor-migrationalert-event output): a 24-vCPU guest
  // at 99.46995 % on a 40-core host scores 59.681970, and neither other host can take it.
  it("refuses every target with Cloudpods' reason format, least loaded first", () => {
    const result = plan(
      cpuRule({ sourceHosts: ['h66'] }),
      [
        host('h66', 70, { name: 'test-66-onecloud02' }),
        host('h69', 55.313408, { name: 'test-69-onecloud01' }),
        host('a15', 62.305391, { name: 'a15' }),
      ],
      [guest('g1', 'h66', 99.46995, { name: 'cpu-test-vm', vcpus: 24 })],
    );
    expect(result.moves).toEqual([]);
    expect(result.unplaced).toEqual([
      {
        guest: 'g1',
        reasons: [
          'host:test-69-onecloud01:current(55.313408) + guest:cpu-test-vm:score(59.681970) >= threshold(60.000000)',
          'host:a15:current(62.305391) + guest:cpu-test-vm:score(59.681970) >= threshold(60.000000)',
        ],
      },
    ]);
    expect(result.alerted).toEqual([{ host: 'h66', value: 70, after: 70, relieved: false }]);
  });

  it('fires strictly above the threshold: a host exactly at it does not move anything', () => {
    const result = plan(cpuRule(), [host('a', 60), host('b', 10)], [guest('g', 'a', 100)]);
    expect(result.alerted).toEqual([]);
    expect(result.moves).toEqual([]);
  });

  it('moves one guest that is enough on its own, to the least loaded target, with the score rescaled', () => {
    const result = plan(
      cpuRule(),
      [host('a', 70), host('b', 30, { cpus: 20 }), host('c', 20, { cpus: 80 })],
      [guest('big', 'a', 100, { vcpus: 8 }), guest('small', 'a', 50, { vcpus: 4 })],
    );
    // big: 100 × 8 / 40 = 20 on a (> the 10 needed); on c 100 × 8 / 80 = 10 → 30; on b 8 × 100 / 20 = 40 → 70.
    expect(result.moves).toEqual([
      { guest: 'big', from: 'a', to: 'c', score: 20, targetScore: 10, targetCurrent: 20 },
    ]);
    expect(result.hostAfter).toEqual({ a: 50, b: 30, c: 30 });
    expect(result.alerted[0]).toMatchObject({ host: 'a', relieved: true });
  });

  it('moves the fewest guests: one large that is enough, not two small that are also enough', () => {
    const result = plan(
      cpuRule(),
      [host('a', 75), host('b', 10)],
      [
        guest('s1', 'a', 100, { vcpus: 4 }),
        guest('s2', 'a', 100, { vcpus: 4 }),
        guest('l', 'a', 100, { vcpus: 8 }),
      ],
    );
    // Need > 15: l scores 20; s1 and s2 score 10 each.
    expect(result.moves.map((m) => m.guest)).toEqual(['l']);
  });

  it('prefers the steadiest guest among those enough on their own', () => {
    const result = plan(
      cpuRule(),
      [host('a', 70), host('b', 10)],
      [
        guest('spiky', 'a', 60, { vcpus: 8, history: [10, 100, 5, 95] }),
        guest('steady', 'a', 60, { vcpus: 8, history: [59, 61, 60, 60] }),
      ],
    );
    expect(result.moves.map((m) => m.guest)).toEqual(['steady']);
  });

  it('moves several smaller guests when the largest fits nowhere', () => {
    const result = plan(
      cpuRule(),
      [host('a', 90), host('b', 40), host('c', 40)],
      [
        guest('huge', 'a', 100, { vcpus: 16 }), // 40 points: fits on neither (40 + 40 >= 60)
        guest('m1', 'a', 100, { vcpus: 6 }), // 15 points each
        guest('m2', 'a', 100, { vcpus: 6 }),
      ],
    );
    expect(result.moves.map((m) => [m.guest, m.to])).toEqual([
      ['m1', 'b'],
      ['m2', 'c'],
    ]);
    expect(result.hostAfter.a).toBe(60);
    // Still at 60, not under: the host is helped, not relieved, and the large guest says why it stayed.
    expect(result.alerted[0]).toMatchObject({ relieved: false, after: 60 });
    expect(result.unplaced.map((u) => u.guest)).toEqual(['huge']);
  });

  it('never pushes a target past the threshold minus the margin, and says so', () => {
    const result = plan(
      cpuRule({ margin: 0.1 }),
      [host('a', 80), host('b', 45)],
      [guest('g', 'a', 100, { vcpus: 4 })], // 10 points: b would reach 55 >= 54
    );
    expect(result.moves).toEqual([]);
    expect(result.unplaced[0]!.reasons).toEqual([
      'host:b:current(45.000000) + guest:g:score(10.000000) >= threshold(60.000000) - margin(6.000000)',
    ]);
  });

  it('aims under the threshold minus the margin on the source too', () => {
    const result = plan(
      cpuRule({ margin: 0.1 }),
      [host('a', 62), host('b', 0), host('c', 0)],
      // 54 is the line: 5 points is not enough alone (57), so a second guest goes too.
      [
        guest('g1', 'a', 100, { vcpus: 2 }),
        guest('g2', 'a', 100, { vcpus: 2 }),
        guest('g3', 'a', 20, { vcpus: 2 }),
      ],
    );
    expect(result.moves.map((m) => m.guest)).toEqual(['g1', 'g2']);
    expect(result.hostAfter.a).toBe(52);
  });

  it('adds up the moves already planned onto a target', () => {
    const result = plan(
      cpuRule(),
      [host('a', 80), host('d', 79), host('b', 30)],
      [guest('g1', 'a', 100, { vcpus: 8 }), guest('g2', 'd', 100, { vcpus: 8 })],
    );
    // Each scores 20. The host nearest the threshold goes first (the easiest to relieve): b takes d's (50);
    // a's would make it 70.
    expect(result.moves.map((m) => [m.guest, m.to])).toEqual([['g2', 'b']]);
    expect(result.unplaced).toEqual([
      {
        guest: 'g1',
        reasons: [
          'host:b:current(50.000000) + guest:g1:score(20.000000) >= threshold(60.000000)',
          'host:d: guests leave it in this plan',
        ],
      },
    ]);
  });

  it('moves nothing off a host that every move that fits would leave past the threshold', () => {
    const result = plan(
      cpuRule(),
      [host('a', 95), host('b', 30)],
      [
        guest('g1', 'a', 100, { vcpus: 8 }),
        guest('g2', 'a', 100, { vcpus: 8 }),
        guest('g3', 'a', 100, { vcpus: 8 }),
      ],
    );
    // b could take one guest (a: 75, still past 60): that would churn without ending the alert.
    expect(result.moves).toEqual([]);
    expect(result.hostAfter).toEqual({ a: 95, b: 30 });
    expect(result.alerted).toEqual([{ host: 'a', value: 95, after: 95, relieved: false }]);
    expect(result.unplaced.find((u) => u.guest === 'g1')?.reasons).toEqual([
      'would go to host:b, but host:a stays past the threshold with every move that fits: none is made',
    ]);
  });

  it('never sends a guest back within the hour to the host a rule took it off', () => {
    const moved = {
      lastMigratedAt: '2026-11-30T23:40:00Z',
      leftHosts: [
        { host: 'b', at: '2026-11-30T23:10:00Z' },
        { host: 'd', at: '2026-11-30T22:50:00Z' },
      ],
    };
    const result = plan(
      cpuRule({ cooldownS: 0 }),
      [host('a', 80), host('b', 0), host('c', 30), host('d', 10)],
      [guest('g', 'a', 100, { vcpus: 10, ...moved })],
    );
    // d was left 70 minutes ago: free again, and less loaded than c.
    expect(result.moves.map((m) => m.to)).toEqual(['d']);
    const nowhere = plan(
      cpuRule({ cooldownS: 0 }),
      [host('a', 80), host('b', 0)],
      [guest('g', 'a', 100, { vcpus: 10, ...moved })],
    );
    expect(nowhere.unplaced[0]!.reasons).toEqual([
      'host:b: guest:g left it at 2026-11-30T23:10:00Z, within 3600s',
    ]);
    const later = plan(
      cpuRule({ cooldownS: 0, returnBlockS: 1800 }),
      [host('a', 80), host('b', 0)],
      [guest('g', 'a', 100, { vcpus: 10, ...moved })],
    );
    expect(later.moves.map((m) => m.to)).toEqual(['b']);
  });

  it("obeys the rule's source hosts, target hosts and source guests", () => {
    const hosts = [host('a', 80), host('b', 80), host('t1', 20), host('t2', 0)];
    const guests = [
      guest('ga1', 'a', 100, { vcpus: 12 }),
      guest('ga2', 'a', 100, { vcpus: 12 }),
      guest('gb', 'b', 100, { vcpus: 12 }),
    ];
    const onlyA = plan(
      cpuRule({ sourceHosts: ['a'], targetHosts: ['t1'], sourceGuests: ['ga2', 'gb'] }),
      hosts,
      guests,
    );
    expect(onlyA.alerted.map((h) => h.host)).toEqual(['a']);
    expect(onlyA.moves).toEqual([expect.objectContaining({ guest: 'ga2', to: 't1' })]);
    const all = plan(cpuRule(), hosts, guests);
    expect(all.alerted.map((h) => h.host).sort()).toEqual(['a', 'b']);
    expect(all.moves.map((m) => m.to)).not.toContain('a');
  });

  it('skips guests in their cool-down and guests already migrating, and names them when the host stays alerted', () => {
    const recent = guest('recent', 'a', 100, { vcpus: 12, lastMigratedAt: '2026-11-30T23:50:00Z' }); // 10 min < 15 min
    const busy = guest('busy', 'a', 100, { vcpus: 12, migrating: true });
    const old = guest('old', 'a', 100, { vcpus: 10, lastMigratedAt: '2026-11-30T23:40:00Z' }); // 20 min: free to go
    const hosts = [host('a', 80), host('b', 0)];
    const relieved = plan(cpuRule({ periodS: 300 }), hosts, [recent, busy, old]);
    expect(relieved.moves.map((m) => m.guest)).toEqual(['old']);
    expect(relieved.unplaced).toEqual([]);
    const stuck = plan(cpuRule({ periodS: 300 }), hosts, [recent, busy]);
    expect(stuck.moves).toEqual([]);
    expect(stuck.unplaced).toEqual([
      { guest: 'recent', reasons: ['moved at 2026-11-30T23:50:00Z, within the cool-down of 900s'] },
      { guest: 'busy', reasons: ['already migrating'] },
    ]);
  });

  it('takes the cool-down from the rule when given', () => {
    const result = plan(
      cpuRule({ cooldownS: 60 }),
      [host('a', 80), host('b', 0)],
      [guest('recent', 'a', 100, { vcpus: 12, lastMigratedAt: '2026-11-30T23:58:00Z' })],
    );
    expect(result.moves.map((m) => m.guest)).toEqual(['recent']);
  });

  it('leaves hosts without data out: they neither fire nor receive', () => {
    const result = plan(
      cpuRule(),
      [host('a', 80), host('dark', null), host('b', 50)],
      [guest('g', 'a', 100, { vcpus: 12 })],
    );
    expect(result.noData).toEqual(['dark']);
    expect(result.moves).toEqual([]);
    expect(result.hostAfter).not.toHaveProperty('dark');
  });

  it('does not move guests onto a host that guests leave in the same plan', () => {
    const result = plan(
      cpuRule(),
      [host('a', 90), host('b', 61), host('c', 0, { cpus: 4, memoryBytes: 4 * GiB })],
      [guest('ga', 'a', 100, { vcpus: 16 }), guest('gb', 'b', 100, { vcpus: 1 })],
    );
    // ga goes first (a is further past): only b could take it after b's own guest left, and c lacks memory.
    expect(result.moves.map((m) => [m.guest, m.to])).toEqual([['gb', 'c']]);
  });

  it('checks the target has the memory for the guest', () => {
    const result = plan(
      cpuRule(),
      [host('a', 80), host('b', 0, { memoryBytes: 8 * GiB })],
      [guest('g', 'a', 100, { vcpus: 12, memoryMb: 4096 }), guest('resident', 'b', 0, { memoryMb: 6144 })],
    );
    expect(result.moves).toEqual([]);
    expect(result.unplaced[0]!.reasons[0]).toMatch(
      /^host:b:memory_used\(6442450944\) \+ guest:g:memory\(4294967296\) > memory\(8589934592\)$/,
    );
  });

  it('prefers the steadier of two targets that end equally loaded', () => {
    const result = plan(
      cpuRule(),
      [host('a', 80), host('calm', 20), host('noisy', 20)],
      [
        guest('g', 'a', 100, { vcpus: 12 }),
        guest('n', 'noisy', 20, { history: [0, 80, 0, 80] }),
        guest('c', 'calm', 20, { history: [20, 20, 20, 20] }),
      ],
    );
    expect(result.moves.map((m) => m.to)).toEqual(['calm']);
  });

  it("weighs a target's steadiness by its own history when given, not its guests'", () => {
    // The guests say 'noisy' swings and 'calm' does not; the hosts' own series say the opposite (the guests'
    // swings cancel out on 'noisy', and 'calm' carries load no guest explains). The host's series wins.
    const guests = [
      guest('g', 'a', 100, { vcpus: 12 }),
      guest('n1', 'noisy', 20, { history: [0, 80, 0, 80] }),
      guest('n2', 'noisy', 20, { history: [80, 0, 80, 0] }),
      guest('c', 'calm', 20, { history: [20, 20, 20, 20] }),
    ];
    const withHistory = plan(
      cpuRule(),
      [
        host('a', 80, { history: [80, 80] }),
        host('calm', 20, { history: [0, 40, 0, 40] }),
        host('noisy', 20, { history: [20, 20, 20, 20] }),
      ],
      guests,
    );
    expect(withHistory.moves.map((m) => m.to)).toEqual(['noisy']);
    const withoutHistory = plan(cpuRule(), [host('a', 80), host('calm', 20), host('noisy', 20)], guests);
    expect(withoutHistory.moves.map((m) => m.to)).toEqual(['calm']);
  });

  it('takes an empty host history as steady, and needs no usage from guests that cannot move', () => {
    const result = plan(
      cpuRule(),
      [
        host('a', 80, { history: [] }),
        host('young', 20, { history: [] }),
        host('old', 20, { history: [30, 31] }),
      ],
      [guest('g', 'a', 100, { vcpus: 12 }), guest('o', 'old', null), guest('x', 'young', null)],
    );
    expect(result.moves.map((m) => m.to)).toEqual(['young']);
    expect(result.unplaced).toEqual([]);
  });

  it('names the first targets and counts the rest in a large fleet', () => {
    const targets = Array.from({ length: MAX_REASONS_PER_GUEST + 5 }, (_, i) =>
      host(`t${String(i).padStart(2, '0')}`, 59),
    );
    const result = plan(cpuRule(), [host('a', 80), ...targets], [guest('g', 'a', 100, { vcpus: 4 })]);
    const reasons = result.unplaced[0]!.reasons;
    expect(reasons).toHaveLength(MAX_REASONS_PER_GUEST + 1);
    expect(reasons.at(-1)).toBe('and 5 more hosts');
  });

  it('gives the same plan for the same input whatever the order of hosts and guests', () => {
    const hosts = [host('a', 85), host('b', 20), host('c', 20), host('d', 75)];
    const guests = [
      guest('g1', 'a', 90, { vcpus: 6 }),
      guest('g2', 'a', 90, { vcpus: 6 }),
      guest('g3', 'd', 100, { vcpus: 8 }),
    ];
    const one = plan(cpuRule(), hosts, guests);
    const other = plan(cpuRule(), [...hosts].reverse(), [...guests].reverse());
    expect(other.moves).toEqual(one.moves);
  });
});

describe('planAlertMoves: memory rules', () => {
  const memRule = (over: Partial<PlannerRule> = {}): PlannerRule => ({
    metric: 'mem.available',
    threshold: 2 * GiB,
    periodS: 300,
    margin: 0,
    ...over,
  });

  it('fires below the threshold and scores guests by their memory', () => {
    const result = plan(
      memRule(),
      [host('a', 1 * GiB), host('b', 20 * GiB), host('c', 10 * GiB)],
      [guest('g1', 'a', null, { memoryMb: 2048 }), guest('g2', 'a', null, { memoryMb: 512 })],
    );
    // Needs more than 1 GiB back: g1 (2 GiB) alone; the host with the most free memory takes it.
    expect(result.moves).toEqual([
      { guest: 'g1', from: 'a', to: 'b', score: 2 * GiB, targetScore: 2 * GiB, targetCurrent: 20 * GiB },
    ]);
    expect(result.hostAfter).toEqual({ a: 3 * GiB, b: 18 * GiB, c: 10 * GiB });
  });

  it('does not fire at exactly the threshold', () => {
    const result = plan(memRule(), [host('a', 2 * GiB), host('b', 20 * GiB)], [guest('g', 'a', null)]);
    expect(result.alerted).toEqual([]);
  });

  it("refuses a target whose free memory would fall to the threshold, in the seed's shape", () => {
    const result = plan(
      memRule(),
      [host('a', 1 * GiB), host('b', 5 * GiB)],
      [guest('g', 'a', null, { memoryMb: 3072 })],
    );
    expect(result.unplaced[0]!.reasons).toEqual([
      'host:b:current(5368709120.000000) - guest:g:score(3221225472.000000) <= threshold(2147483648.000000)',
    ]);
  });

  it('does not need cpu usage to move a guest for memory', () => {
    const result = plan(
      memRule(),
      [host('a', 1 * GiB), host('b', 50 * GiB)],
      [guest('g', 'a', null, { memoryMb: 8192 })],
    );
    expect(result.moves.map((m) => m.guest)).toEqual(['g']);
  });

  it('keeps the margin above the threshold on targets', () => {
    const result = plan(
      memRule({ margin: 0.5 }),
      [host('a', 1 * GiB), host('b', 5 * GiB)],
      [guest('g', 'a', null, { memoryMb: 2048 })],
    );
    // b would keep 3 GiB: above 2 GiB but not above 3 GiB.
    expect(result.moves).toEqual([]);
    expect(result.unplaced[0]!.reasons[0]).toContain('- margin(1073741824.000000)');
  });
});

describe('planAlertMoves: hosts that take no new guests', () => {
  it('never targets a host that accepts no guests, though it still fires', () => {
    const result = plan(
      cpuRule(),
      [host('a', 80), host('closed', 0, { acceptsGuests: false }), host('open', 30)],
      [guest('g', 'a', 100, { vcpus: 10 }), guest('h', 'closed', 100)],
    );
    expect(result.moves.map((m) => m.to)).toEqual(['open']);
    const closedFires = plan(
      cpuRule(),
      [host('closed', 80, { acceptsGuests: false }), host('b', 0)],
      [guest('g', 'closed', 100, { vcpus: 10 })],
    );
    expect(closedFires.moves.map((m) => m.to)).toEqual(['b']);
  });
});

describe('planAlertMoves: hosts whose metrics lag a recent migration', () => {
  it('neither fires nor receives while settling, and says so', () => {
    const result = plan(
      cpuRule(),
      [host('a', 90, { settling: true }), host('b', 80), host('c', 0, { settling: true }), host('d', 10)],
      [guest('ga', 'a', 100, { vcpus: 12 }), guest('gb', 'b', 100, { vcpus: 12 })],
    );
    expect(result.settling).toEqual(['a']);
    expect(result.alerted.map((h) => h.host)).toEqual(['b']);
    expect(result.moves).toEqual([expect.objectContaining({ guest: 'gb', to: 'd' })]);
  });
});

const relieves = (...args: Parameters<typeof hostsToRelieve>) => hostsToRelieve(...args).length > 0;

describe('firingHosts and hostsToRelieve: whether a cycle needs the guests at all', () => {
  it('fires strictly past the threshold, on watched hosts with data only', () => {
    const hosts = [host('at', 60), host('over', 60.01), host('none', null), host('under', 10)];
    expect(firingHosts(cpuRule(), hosts).map((h) => h.id)).toEqual(['over']);
    expect(firingHosts(cpuRule({ sourceHosts: ['at', 'under'] }), hosts)).toEqual([]);
    expect(firingHosts(cpuRule({ sourceHosts: [] }), hosts).map((h) => h.id)).toEqual(['over']);
  });

  it('fires below the threshold for memory', () => {
    const rule: PlannerRule = { metric: 'mem.available', threshold: 2 * GiB, periodS: 120 };
    const hosts = [host('low', GiB), host('at', 2 * GiB), host('high', 8 * GiB)];
    expect(firingHosts(rule, hosts).map((h) => h.id)).toEqual(['low']);
  });

  it('has nothing to relieve when only settling hosts fire, or none', () => {
    expect(relieves(cpuRule(), [host('a', 90, { settling: true }), host('b', 10)])).toBe(false);
    expect(relieves(cpuRule(), [host('a', 50), host('b', 10)])).toBe(false);
    expect(relieves(cpuRule(), [host('a', 90, { settling: true }), host('b', 70)])).toBe(true);
  });

  it('without a host to relieve, the plan is the same with or without the guests usage', () => {
    const hosts = [host('a', 90, { settling: true }), host('b', 55), host('c', null), host('d', 5)];
    const guests = [
      guest('ga', 'a', 100, { vcpus: 12, history: [90, 100] }),
      guest('gb', 'b', 80, { history: [10, 90] }),
      guest('gd', 'd', 5),
    ];
    const rule = cpuRule();
    expect(relieves(rule, hosts)).toBe(false);
    const blind = guests.map((g) => ({ ...g, usage: null, history: [] }));
    expect(plan(rule, hosts, blind)).toEqual(plan(rule, hosts, guests));
  });
});
