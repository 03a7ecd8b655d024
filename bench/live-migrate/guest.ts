import { DEFAULT_DOWNTIME_LIMIT_MS, bandwidthBytesPerSecond } from '../../domain/live-migration.ts';
import type { GuestSpec } from '../../domain/agent-contract.ts';

/** The guest of the issue: 1 GiB, 512 MiB filled with non-zero data at boot, then 5 MiB/s dirtied. */
export const GUEST = {
  vcpus: 1,
  memoryMb: 1024,
  fillMb: 512,
  dirtyRateMibs: 5,
} as const;

/** max_bandwidth_mb of the API request; the bare script sets the same QMP max-bandwidth. */
export const MAX_BANDWIDTH_MB = 100;
export const MAX_BANDWIDTH_BYTES = bandwidthBytesPerSecond(MAX_BANDWIDTH_MB);
/** The QEMU settings a migration starts with: the bare script copies what the workflow's plan chose. */
export interface QemuStart {
  downtimeMs: number;
  /** Bytes/s. */
  bandwidthBytes: number;
  autoConverge: boolean;
  xbzrle: boolean;
  /** The postcopy-ram capability (the bare script never switches to post-copy). */
  postCopy: boolean;
  cpuThrottleInitial: number | null;
  cpuThrottleIncrement: number | null;
}

/** If the plan cannot be computed: Cloudpods' 300 ms downtime limit, the cap, plain pre-copy. */
export const FALLBACK_START: QemuStart = {
  downtimeMs: DEFAULT_DOWNTIME_LIMIT_MS,
  bandwidthBytes: MAX_BANDWIDTH_BYTES,
  autoConverge: false,
  xbzrle: false,
  postCopy: false,
  cpuThrottleInitial: null,
  cpuThrottleIncrement: null,
};

export const NETWORK = 'default';

/** The spec a host agent would get for this guest: the bare script builds its QEMU command line from it. */
export function benchGuestSpec(id: string, name: string, mac: string): GuestSpec {
  return { id, name, ...GUEST, disks: [], networks: [{ name: NETWORK, mac }] };
}
