import type { MigrationStatus } from '../../domain/agent-contract.ts';

export function migrationStatus(overrides: Partial<MigrationStatus> = {}): MigrationStatus {
  return {
    migrationId: 'm1',
    status: 'active',
    transferredBytes: 0,
    remainingBytes: 0,
    totalBytes: 0,
    dirtyPagesRate: 0,
    pageSize: 4096,
    dirtySyncCount: 1,
    mbps: 0,
    expectedDowntimeMs: null,
    downtimeMs: null,
    totalTimeMs: null,
    cpuThrottlePercentage: null,
    errorDesc: null,
    ...overrides,
  };
}
