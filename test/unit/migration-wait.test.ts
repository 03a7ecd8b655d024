import { describe, expect, it } from 'vitest';
import {
  MAX_MIGRATION_WAIT_MS,
  MigrationSignals,
  migrationWaitRequest,
  waitForMigrationChange,
} from '../../agent/migration-wait.ts';
import { AgentFailure } from '../../agent/errors.ts';
import type { MigrationStatus } from '../../domain/agent-contract.ts';

const status = (s: MigrationStatus['status']) => ({ status: s }) as MigrationStatus;

describe('the held migration-status read (long poll)', () => {
  it('reads ?waitMs and ?unless, naming the bad parameter', () => {
    expect(migrationWaitRequest({})).toEqual({ waitMs: 0, unless: null });
    expect(migrationWaitRequest({ waitMs: '500', unless: 'active' })).toEqual({
      waitMs: 500,
      unless: 'active',
    });
    for (const [query, field] of [
      [{ waitMs: '-1' }, 'waitMs'],
      [{ waitMs: '1.5' }, 'waitMs'],
      [{ waitMs: String(MAX_MIGRATION_WAIT_MS + 1) }, 'waitMs'],
      [{ waitMs: 'soon' }, 'waitMs'],
      [{ unless: 'running' }, 'unless'],
    ] as const) {
      let error: unknown;
      try {
        migrationWaitRequest(query);
      } catch (err) {
        error = err;
      }
      expect(error).toBeInstanceOf(AgentFailure);
      expect((error as AgentFailure).status).toBe(400);
      expect((error as AgentFailure).field).toBe(field);
    }
  });

  it('answers at once without unless, or when the status already differs', async () => {
    let reads = 0;
    const read = async () => {
      reads++;
      return status('completed');
    };
    const signals = new MigrationSignals();
    expect((await waitForMigrationChange(read, signals, 'g', { waitMs: 0, unless: null })).status).toBe(
      'completed',
    );
    expect(
      (await waitForMigrationChange(read, signals, 'g', { waitMs: 2000, unless: 'active' })).status,
    ).toBe('completed');
    expect(reads).toBe(2);
  });

  it('holds an unchanged status until waitMs, reading again between', async () => {
    let reads = 0;
    const started = Date.now();
    const answer = await waitForMigrationChange(
      async () => {
        reads++;
        return status('active');
      },
      new MigrationSignals(),
      'g',
      { waitMs: 200, unless: 'active' },
    );
    expect(answer.status).toBe('active');
    expect(Date.now() - started).toBeGreaterThanOrEqual(195);
    // Re-read every MIGRATION_WAIT_RECHECK_MS (50 ms) at most: a handful, not a busy loop.
    expect(reads).toBeGreaterThanOrEqual(2);
    expect(reads).toBeLessThanOrEqual(6);
  });

  it('answers on the hypervisor event for that guest, not on another guest’s', async () => {
    const signals = new MigrationSignals();
    let current: MigrationStatus['status'] = 'active';
    let reads = 0;
    const read = async () => {
      reads++;
      return status(current);
    };
    const held = waitForMigrationChange(read, signals, 'g', { waitMs: 5000, unless: 'active' });
    await new Promise((r) => setTimeout(r, 5));
    signals.notify('other');
    current = 'completed';
    signals.notify('g');
    const answer = await held;
    expect(answer.status).toBe('completed');
    // Woken by the event: the second read saw the change, no recheck timer was needed.
    expect(reads).toBe(2);
  });
});
