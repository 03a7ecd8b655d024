/**
 * What each host of a sim fleet (agent/fleet.ts) is: its name, its size and when it first registers. Pure:
 * the same count, prefix and seed give the same fleet, so a benchmark can plan its guests before it starts.
 */

/** A sim host's size; the CPU model stays the fleet's, so that every host can take every other's guests. */
export interface FleetHostSize {
  cpus: number;
  memoryMb: number;
}

/** Sizes a fleet's hosts are drawn from (common two-socket servers). */
export const FLEET_HOST_SIZES: readonly FleetHostSize[] = [
  { cpus: 32, memoryMb: 262_144 },
  { cpus: 48, memoryMb: 393_216 },
  { cpus: 64, memoryMb: 524_288 },
  { cpus: 96, memoryMb: 786_432 },
];

export interface FleetHostPlan extends FleetHostSize {
  /** 1-based. */
  index: number;
  name: string;
}

/** Digits of a host's number: at least 4 (`sim-0001`), more when the fleet is larger. */
export function nameDigits(count: number): number {
  return Math.max(4, String(count).length);
}

export function fleetHostName(prefix: string, index: number, count: number): string {
  return `${prefix}${String(index).padStart(nameDigits(count), '0')}`;
}

/** A 32-bit hash of (seed, index): mulberry32's mixing step, enough to spread sizes evenly. */
function mix(seed: number, index: number): number {
  let t = (Math.imul(seed | 0, 0x9e3779b1) + Math.imul(index | 0, 0x85ebca6b) + 0x6d2b79f5) | 0;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return (t ^ (t >>> 14)) >>> 0;
}

export function fleetHostSize(
  seed: number,
  index: number,
  sizes: readonly FleetHostSize[] = FLEET_HOST_SIZES,
): FleetHostSize {
  if (sizes.length === 0) throw new RangeError('a fleet needs at least one host size');
  return sizes[mix(seed, index) % sizes.length]!;
}

export function planFleet(options: {
  count: number;
  prefix: string;
  seed: number;
  sizes?: readonly FleetHostSize[];
}): FleetHostPlan[] {
  return Array.from({ length: options.count }, (_, i) => {
    const index = i + 1;
    return {
      index,
      name: fleetHostName(options.prefix, index, options.count),
      ...fleetHostSize(options.seed, index, options.sizes),
    };
  });
}

/**
 * When host `index` (1-based) of `count` first registers: evenly over `spreadMs`, so that each refresh
 * period after that sees the fleet's registrations one by one rather than all at once.
 */
export function registrationDelayMs(index: number, count: number, spreadMs: number): number {
  if (count <= 1 || spreadMs <= 0) return 0;
  return Math.floor(((index - 1) * spreadMs) / count);
}
