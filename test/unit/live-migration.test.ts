import { describe, expect, it } from 'vitest';
import { bandwidthBytesPerSecond, progressOf } from '../../domain/live-migration.ts';
import { migrationStatus } from './status-fixture.ts';

const MiB = 1024 * 1024;

describe('progressOf', () => {
  it('estimates the time to finish from the link rate net of the dirty rate', () => {
    // 800 Mbps = 100 MB/s on the wire, dirtying 256 pages/s * 4 KiB = 1 MiB/s.
    const p = progressOf(
      migrationStatus({
        mbps: 800,
        dirtyPagesRate: 256,
        remainingBytes: 99 * 1_000_000,
        totalBytes: 200 * MiB,
      }),
      1,
    );
    expect(p.dirtyRateBytesPerSecond).toBe(MiB);
    expect(p.etaSeconds).toBe(Math.ceil((99 * 1_000_000) / (100_000_000 - MiB)));
    expect(p.percent).toBe(Math.round(((200 * MiB - 99_000_000) / (200 * MiB)) * 100));
  });

  it('gives no ETA when the guest dirties memory as fast as the link carries it', () => {
    const p = progressOf(
      migrationStatus({ mbps: 8, dirtyPagesRate: 1000, remainingBytes: 10 * MiB, totalBytes: 20 * MiB }),
      1,
    );
    expect(p.etaSeconds).toBeNull();
  });

  it('ignores the dirty rate in post-copy, where pages are pulled once', () => {
    const p = progressOf(
      migrationStatus({
        status: 'postcopy-active',
        mbps: 8,
        dirtyPagesRate: 1000,
        remainingBytes: 1_000_000,
        totalBytes: 2_000_000,
      }),
      1,
    );
    expect(p.etaSeconds).toBe(1);
  });

  it('says 100% and ETA 0 once completed, never 100% before', () => {
    expect(progressOf(migrationStatus({ status: 'completed', totalBytes: 10 }), 1)).toMatchObject({
      percent: 100,
      etaSeconds: 0,
    });
    expect(progressOf(migrationStatus({ remainingBytes: 1, totalBytes: 1_000_000 }), 1).percent).toBe(99);
    expect(progressOf(migrationStatus({ totalBytes: 0 }), 1).percent).toBe(0);
  });

  it('converts MB/s caps to bytes and null to unlimited (0)', () => {
    expect(bandwidthBytesPerSecond(null)).toBe(0);
    expect(bandwidthBytesPerSecond(100)).toBe(100 * MiB);
  });
});
