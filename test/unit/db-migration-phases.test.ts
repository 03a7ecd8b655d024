import { describe, expect, it } from 'vitest';
import { migrations } from '../../db/schema.ts';
import {
  activeMigrationPhases,
  isTerminalPhase,
  migrationPhases,
  terminalMigrationPhases,
} from '../../domain/migration-phases.ts';

describe('migration phases', () => {
  it('lists every phase once, from pending to the three endings', () => {
    expect(new Set(migrationPhases).size).toBe(migrationPhases.length);
    expect(migrationPhases[0]).toBe('pending');
    expect(migrationPhases.slice(-3)).toEqual(['completed', 'failed', 'cancelled']);
  });

  it('splits them into terminal and active, with nothing left over', () => {
    expect(terminalMigrationPhases).toEqual(['completed', 'failed', 'cancelled']);
    expect([...activeMigrationPhases, ...terminalMigrationPhases].sort()).toEqual(
      [...migrationPhases].sort(),
    );
    expect(activeMigrationPhases).toEqual([
      'pending',
      'queued',
      'prechecks',
      'preparing',
      'copying',
      'switching-over',
      'verifying',
      'committing',
      'cleaning',
      'rolling-back',
    ]);
  });

  it('tells a terminal phase from an active one', () => {
    for (const phase of terminalMigrationPhases) expect(isTerminalPhase(phase)).toBe(true);
    for (const phase of activeMigrationPhases) expect(isTerminalPhase(phase)).toBe(false);
    expect(isTerminalPhase('no-such-phase')).toBe(false);
  });

  it('is the list the migrations table takes its phase column from', () => {
    expect(migrations.phase.enumValues).toEqual([...migrationPhases]);
  });
});
