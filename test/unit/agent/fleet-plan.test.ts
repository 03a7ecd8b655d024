import { describe, expect, it } from 'vitest';
import {
  FLEET_HOST_SIZES,
  fleetHostName,
  fleetHostSize,
  nameDigits,
  planFleet,
  registrationDelayMs,
} from '../../../agent/fleet-plan.ts';

describe('fleet host names', () => {
  it('are the prefix and the 1-based number, four digits at least', () => {
    expect(fleetHostName('sim-', 1, 20)).toBe('sim-0001');
    expect(fleetHostName('sim-', 1000, 1000)).toBe('sim-1000');
    expect(fleetHostName('rack7-', 42, 9999)).toBe('rack7-0042');
  });

  it('grow wider with the fleet, so that they sort in order', () => {
    expect(nameDigits(1)).toBe(4);
    expect(nameDigits(9_999)).toBe(4);
    expect(nameDigits(10_000)).toBe(5);
    expect(fleetHostName('h', 7, 20_000)).toBe('h00007');
  });
});

describe('fleet host sizes', () => {
  it('are the same for the same seed and index', () => {
    for (let index = 1; index <= 50; index++) {
      expect(fleetHostSize(7, index)).toEqual(fleetHostSize(7, index));
    }
  });

  it('come from the size list and use every size over a fleet', () => {
    const sizes = planFleet({ count: 1000, prefix: 'sim-', seed: 1 }).map((h) => `${h.cpus}/${h.memoryMb}`);
    const distinct = new Set(sizes);
    expect(distinct).toEqual(new Set(FLEET_HOST_SIZES.map((s) => `${s.cpus}/${s.memoryMb}`)));
    // Spread evenly enough: no size takes more than twice its fair share.
    for (const size of distinct) {
      expect(sizes.filter((s) => s === size).length).toBeLessThan((2 * 1000) / FLEET_HOST_SIZES.length);
    }
  });

  it('differ with the seed', () => {
    const of = (seed: number) => planFleet({ count: 100, prefix: 'sim-', seed }).map((h) => h.cpus);
    expect(of(1)).not.toEqual(of(2));
  });

  it('take a list of one size as that size', () => {
    const only = [{ cpus: 8, memoryMb: 16_384 }];
    expect(planFleet({ count: 3, prefix: 'x', seed: 5, sizes: only }).map((h) => h.cpus)).toEqual([8, 8, 8]);
  });

  it('refuse an empty size list', () => {
    expect(() => fleetHostSize(1, 1, [])).toThrow(RangeError);
  });
});

describe('planFleet', () => {
  it('numbers the hosts from 1 with distinct names', () => {
    const plan = planFleet({ count: 20, prefix: 'sim-', seed: 3 });
    expect(plan.map((h) => h.index)).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
    expect(new Set(plan.map((h) => h.name)).size).toBe(20);
    expect(plan[0]!.name).toBe('sim-0001');
    expect(plan[19]!.name).toBe('sim-0020');
  });

  it('plans nothing for no hosts', () => {
    expect(planFleet({ count: 0, prefix: 'sim-', seed: 1 })).toEqual([]);
  });
});

describe('registrationDelayMs', () => {
  it('spreads the first registrations evenly over the spread', () => {
    const delays = Array.from({ length: 1000 }, (_, i) => registrationDelayMs(i + 1, 1000, 60_000));
    expect(delays[0]).toBe(0);
    expect(delays[1]).toBe(60);
    expect(delays[999]).toBe(59_940);
    // Never more than one host per 60 ms slot: 1,000 hosts never register at once.
    expect(new Set(delays).size).toBe(1000);
    expect(Math.max(...delays)).toBeLessThan(60_000);
  });

  it('is none for a single host or no spread', () => {
    expect(registrationDelayMs(1, 1, 60_000)).toBe(0);
    expect(registrationDelayMs(5, 10, 0)).toBe(0);
  });

  it('is whole milliseconds and increases with the index', () => {
    const delays = Array.from({ length: 7 }, (_, i) => registrationDelayMs(i + 1, 7, 1_000));
    expect(delays.every(Number.isInteger)).toBe(true);
    expect([...delays].sort((a, b) => a - b)).toEqual(delays);
  });
});
