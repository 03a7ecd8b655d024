import { describe, expect, it } from 'vitest';
import { returnedCopyAction } from '../../domain/host-return.ts';

const here = 'h1';
const decide = (
  copyState: string,
  placed: { hostId: string; status: string } | null,
  migrationInFlight = false,
) => returnedCopyAction({ hostId: here, copyState, placed, migrationInFlight }).action;

describe('returnedCopyAction', () => {
  it('removes a copy of a guest rescued elsewhere, live or not', () => {
    expect(decide('stopped', { hostId: 'h2', status: 'running' })).toBe('remove');
    expect(decide('running', { hostId: 'h2', status: 'running' })).toBe('remove');
  });
  it('removes a copy of a guest the inventory no longer has', () => {
    expect(decide('stopped', null)).toBe('remove');
  });
  it("restarts the host's own fenced guest that should run", () => {
    expect(decide('stopped', { hostId: here, status: 'running' })).toBe('restart');
    expect(decide('crashed', { hostId: here, status: 'running' })).toBe('restart');
  });
  it('keeps what already matches the inventory', () => {
    expect(decide('running', { hostId: here, status: 'running' })).toBe('keep');
    expect(decide('stopped', { hostId: here, status: 'ready' })).toBe('keep');
  });
  it('leaves a guest with a migration in flight to that migration', () => {
    expect(decide('incoming', { hostId: 'h2', status: 'migrating' }, true)).toBe('leave');
    expect(decide('stopped', { hostId: here, status: 'running' }, true)).toBe('leave');
  });
});
