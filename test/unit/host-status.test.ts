import { describe, expect, it } from 'vitest';
import { effectiveHostStatus } from '../../domain/host-status.ts';

describe('effectiveHostStatus', () => {
  it.each([
    ['online', true, 'online'],
    ['online', false, 'offline'],
    ['offline', true, 'online'],
    ['offline', false, 'offline'],
    ['maintenance', true, 'maintenance'],
    ['maintenance', false, 'maintenance'],
  ] as const)('stored %s with lease=%s is %s', (stored, lease, expected) => {
    expect(effectiveHostStatus(stored, lease)).toBe(expected);
  });
});
