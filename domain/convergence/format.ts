/** Number formatting for action reasons: operators read these, so units are always spelt out. */

export const MIB = 1024 * 1024;

export const mib = (bytes: number): string => `${(bytes / MIB).toFixed(1)} MiB`;

export const mibPerSecond = (bytesPerSecond: number): string => `${(bytesPerSecond / MIB).toFixed(1)} MiB/s`;

export const seconds = (ms: number): string => `${(ms / 1000).toFixed(1)} s`;

/** Link rate in bytes/s from QEMU's mbps (megabits per second). */
export const bytesPerSecondFromMbps = (mbps: number): number => (mbps * 1_000_000) / 8;
