import type { PlannerGuest, PlannerHost } from '../../domain/alert-planner.ts';

/**
 * A synthetic fleet for the planner benchmark, from a seeded PRNG: the same seed, host and guest counts
 * give the same fleet on every machine, so the plan's counts (moves, unplaced, alerted) are comparable.
 */

export const GiB = 1024 ** 3;
/** The cpu rule's threshold: the fleet is shaped so that a few percent of hosts are past it. */
export const CPU_THRESHOLD = 80;
/** The memory rule fires on the hosts whose free memory is in this lowest fraction. */
export const MEMORY_FIRING_SHARE = 0.04;
export const NOW = '2026-12-01T00:00:00Z';

/** mulberry32: small, fast, good enough for a benchmark, and the same in every Node. */
export function prng(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function weighted<T>(random: () => number, items: readonly (readonly [T, number])[]): T {
  const total = items.reduce((sum, [, w]) => sum + w, 0);
  let pick = random() * total;
  for (const [item, w] of items) {
    pick -= w;
    if (pick < 0) return item;
  }
  return items.at(-1)![0];
}

/** A standard normal deviate (Box–Muller). */
function normal(random: () => number): number {
  const u = Math.max(random(), 1e-12);
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * random());
}

/**
 * Spread of the hosts' heat (sigma of its log) and the power of the usage draw: with 0.2 and 2.6, about 5 %
 * of the hosts end past 80 % and ~1.5 % at the 100 % cap.
 */
const HEAT_SIGMA = 0.2;
const USAGE_POWER = 2.6;
const clamp = (v: number, low: number, high: number) => Math.min(high, Math.max(low, v));

export interface Fleet {
  hosts: PlannerHost[];
  guests: PlannerGuest[];
  /** Host free memory in bytes, by host index: the memory rule's `current`. */
  freeBytes: number[];
  /** Host cpu percent, by host index: the cpu rule's `current`. */
  cpuPercent: number[];
  /** Guests that did not fit on any host by memory (should be 0). */
  dropped: number;
}

const HOST_CPUS = [
  [32, 3],
  [48, 3],
  [64, 3],
  [96, 1],
] as const;
/** GiB of memory per host cpu; the host's memory is that × cpus, rounded to 64 GiB, within 256–1024 GiB. */
const HOST_MEMORY_PER_CPU = [
  [4, 1],
  [8, 3],
  [12, 2],
  [16, 1],
] as const;
const GUEST_VCPUS = [
  [1, 25],
  [2, 30],
  [4, 25],
  [8, 14],
  [16, 6],
] as const;
/** GiB of memory per vCPU. */
const GUEST_MEMORY_PER_VCPU = [
  [1, 2],
  [2, 4],
  [4, 3],
  [8, 1],
] as const;

const hostMemoryGib = (cpus: number, perCpu: number) =>
  clamp(Math.round((cpus * perCpu) / 64) * 64, 256, 1024);

export function makeFleet(seed: number, hostCount: number, guestCount: number): Fleet {
  const random = prng(seed);
  const width = String(Math.max(hostCount, guestCount) - 1).length;
  const hosts: PlannerHost[] = [];
  /** How busy the host's tenants are: a log-normal factor, so a tail of hosts runs hot. */
  const heat: number[] = [];
  for (let i = 0; i < hostCount; i++) {
    const id = `h${String(i).padStart(width, '0')}`;
    const cpus = weighted(random, HOST_CPUS);
    hosts.push({
      id,
      name: `host-${id}`,
      cpus,
      memoryBytes: hostMemoryGib(cpus, weighted(random, HOST_MEMORY_PER_CPU)) * GiB,
      current: null,
    });
    heat.push(Math.exp(HEAT_SIGMA * normal(random)));
  }
  // Guests land on hosts in proportion to their cpus (cumulative weights, binary search), skipping to the
  // next host when memory is short, as a scheduler would.
  const cumulative: number[] = [];
  let sum = 0;
  for (const h of hosts) cumulative.push((sum += h.cpus));
  const memoryUsed = new Array<number>(hostCount).fill(0);
  const load = new Array<number>(hostCount).fill(0);
  const guests: PlannerGuest[] = [];
  let dropped = 0;
  for (let i = 0; i < guestCount; i++) {
    const vcpus = weighted(random, GUEST_VCPUS);
    const memoryGib = clamp(vcpus * weighted(random, GUEST_MEMORY_PER_VCPU), 1, 64);
    const memoryBytes = memoryGib * GiB;
    const pick = random() * sum;
    let low = 0;
    let high = hostCount - 1;
    while (low < high) {
      const mid = (low + high) >> 1;
      if (cumulative[mid]! > pick) high = mid;
      else low = mid + 1;
    }
    let hostIndex = -1;
    for (let k = 0; k < hostCount; k++) {
      const candidate = (low + k) % hostCount;
      if (memoryUsed[candidate]! + memoryBytes <= hosts[candidate]!.memoryBytes) {
        hostIndex = candidate;
        break;
      }
    }
    if (hostIndex < 0) {
      dropped += 1;
      continue;
    }
    const host = hosts[hostIndex]!;
    memoryUsed[hostIndex]! += memoryBytes;
    // Skewed: most guests are nearly idle, a few are busy (a power of a uniform, scaled by the host's heat).
    const usage = clamp(100 * random() ** USAGE_POWER * heat[hostIndex]!, 0, 100);
    const swing = 0.02 + 0.4 * random() ** 2;
    const history = Array.from({ length: 6 }, () =>
      Number(clamp(usage * (1 + swing * normal(random)), 0, 100).toFixed(2)),
    );
    const id = `g${String(i).padStart(width, '0')}`;
    guests.push({
      id,
      name: `guest-${id}`,
      hostId: host.id,
      vcpus,
      memoryMb: memoryGib * 1024,
      usage: Number(usage.toFixed(2)),
      history,
      lastMigratedAt: null,
    });
    load[hostIndex]! += usage * vcpus;
  }
  const cpuPercent = hosts.map((h, i) => Math.min(100, load[i]! / h.cpus));
  const freeBytes = hosts.map((h, i) => h.memoryBytes - memoryUsed[i]!);
  // A few hosts just moved a guest (their mean lags) and a few take no new guests, as in a real fleet.
  for (const h of hosts) {
    const r = random();
    if (r < 0.01) h.settling = true;
    else if (r < 0.03) h.acceptsGuests = false;
  }
  // A few guests were moved recently (some still in their cool-down) or are migrating now.
  const now = Date.parse(NOW);
  for (const g of guests) {
    const r = random();
    if (r < 0.01) g.migrating = true;
    else if (r < 0.05) g.lastMigratedAt = new Date(now - Math.floor(random() * 7200) * 1000).toISOString();
  }
  return { hosts, guests, freeBytes, cpuPercent, dropped };
}

/** The hosts with the rule's metric as `current`. */
export function withCurrent(fleet: Fleet, values: number[]): PlannerHost[] {
  return fleet.hosts.map((h, i) => ({ ...h, current: values[i]! }));
}

/** The memory threshold: free memory at the MEMORY_FIRING_SHARE quantile, rounded down to a GiB. */
export function memoryThreshold(fleet: Fleet): number {
  const sorted = [...fleet.freeBytes].sort((a, b) => a - b);
  const at = sorted[Math.floor(sorted.length * MEMORY_FIRING_SHARE)] ?? GiB;
  return Math.max(GiB, Math.floor(at / GiB) * GiB);
}
