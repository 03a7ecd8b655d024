import { describe, expect, it } from 'vitest';
import { EnvReader, readWorkerConfig } from '../../domain/config.ts';
import { migrationPhases, terminalMigrationPhases } from '../../domain/migration-phases.ts';
import {
  addPruneCounts,
  DEFAULT_RETENTION_DAYS,
  isPrunableEvent,
  isPrunableMigration,
  namespaceRetentionChange,
  NO_PRUNED_ROWS,
  parseRetentionDays,
  retentionCutoff,
  retentionSeconds,
  withinPruneBudget,
} from '../../domain/retention.ts';

const CONTROL_PLANE = {
  DATABASE_URL: 'postgres://vmmig:pw@db:5432/vmmig',
  AGENT_CREDENTIAL_KEY: 'credential-key',
};

describe('RETENTION_DAYS', () => {
  it('defaults to 30 days when unset or blank', () => {
    expect(DEFAULT_RETENTION_DAYS).toBe(30);
    expect(parseRetentionDays(undefined)).toEqual({ days: 30 });
    expect(parseRetentionDays('  ')).toEqual({ days: 30 });
  });

  it('takes whole days from 1 to 3650', () => {
    expect(parseRetentionDays('1')).toEqual({ days: 1 });
    expect(parseRetentionDays(' 90 ')).toEqual({ days: 90 });
    expect(parseRetentionDays('3650')).toEqual({ days: 3650 });
  });

  it("turns pruning off with 'off' or 'never', in any case", () => {
    expect(parseRetentionDays('off')).toEqual({ days: null });
    expect(parseRetentionDays('OFF')).toEqual({ days: null });
    expect(parseRetentionDays('never')).toEqual({ days: null });
  });

  it('refuses 0, negatives, fractions, units and words, naming the variable', () => {
    for (const raw of ['0', '-1', '1.5', '30d', 'forever', '3651', '1e3']) {
      const reading = parseRetentionDays(raw);
      expect(reading, raw).toEqual({
        problem: `RETENTION_DAYS must be a number of days from 1 to 3650, or 'off' to keep everything, got '${raw}'`,
      });
    }
  });

  it('is read by the worker: the default, a value, off, and a bad value as a start-up problem', () => {
    expect(readWorkerConfig(new EnvReader(CONTROL_PLANE)).retentionDays).toBe(30);
    expect(readWorkerConfig(new EnvReader({ ...CONTROL_PLANE, RETENTION_DAYS: '7' })).retentionDays).toBe(7);
    expect(
      readWorkerConfig(new EnvReader({ ...CONTROL_PLANE, RETENTION_DAYS: 'off' })).retentionDays,
    ).toBeNull();
    const r = new EnvReader({ ...CONTROL_PLANE, RETENTION_DAYS: '0' });
    readWorkerConfig(r);
    expect(r.problems).toEqual([
      "RETENTION_DAYS must be a number of days from 1 to 3650, or 'off' to keep everything, got '0'",
    ]);
  });
});

describe('what is prunable', () => {
  const now = new Date('2026-06-30T12:00:00Z');
  const cutoff = retentionCutoff(now, 30);
  const before = new Date(cutoff.getTime() - 1);
  const after = new Date(cutoff.getTime() + 1);

  it('the cutoff is whole days before now', () => {
    expect(cutoff.toISOString()).toBe('2026-05-31T12:00:00.000Z');
    expect(retentionCutoff(now, 1).toISOString()).toBe('2026-06-29T12:00:00.000Z');
  });

  it('a migration that is over and ended before the cutoff, not at it or after', () => {
    for (const phase of terminalMigrationPhases) {
      expect(isPrunableMigration({ phase, finishedAt: before }, cutoff), phase).toBe(true);
      expect(isPrunableMigration({ phase, finishedAt: cutoff }, cutoff), phase).toBe(false);
      expect(isPrunableMigration({ phase, finishedAt: after }, cutoff), phase).toBe(false);
    }
  });

  it('never an active migration, however old, nor one without an end time', () => {
    const active = migrationPhases.filter((p) => !(terminalMigrationPhases as readonly string[]).includes(p));
    expect(active.length).toBeGreaterThan(0);
    for (const phase of active) {
      expect(isPrunableMigration({ phase, finishedAt: before }, cutoff), phase).toBe(false);
      expect(isPrunableMigration({ phase, finishedAt: null }, cutoff), phase).toBe(false);
    }
    expect(isPrunableMigration({ phase: 'completed', finishedAt: null }, cutoff)).toBe(false);
  });

  it('host, guest and rule events by their age', () => {
    for (const subjectKind of ['host', 'guest', 'rule']) {
      expect(isPrunableEvent({ subjectKind, at: before }, undefined, cutoff), subjectKind).toBe(true);
      expect(isPrunableEvent({ subjectKind, at: cutoff }, undefined, cutoff), subjectKind).toBe(false);
      expect(isPrunableEvent({ subjectKind, at: after }, undefined, cutoff), subjectKind).toBe(false);
    }
  });

  it("a migration's events with their migration, whatever their own age", () => {
    const old = { subjectKind: 'migration', at: before };
    const recent = { subjectKind: 'migration', at: after };
    const gone = { phase: 'completed', finishedAt: before };
    const recentlyOver = { phase: 'failed', finishedAt: after };
    const running = { phase: 'copying', finishedAt: null };
    expect(isPrunableEvent(old, gone, cutoff)).toBe(true);
    expect(isPrunableEvent(recent, gone, cutoff)).toBe(true);
    expect(isPrunableEvent(old, recentlyOver, cutoff)).toBe(false);
    expect(isPrunableEvent(old, running, cutoff)).toBe(false);
  });

  it('events of a migration whose row is gone by their age', () => {
    expect(isPrunableEvent({ subjectKind: 'migration', at: before }, undefined, cutoff)).toBe(true);
    expect(isPrunableEvent({ subjectKind: 'migration', at: after }, undefined, cutoff)).toBe(false);
  });
});

describe('a prune run', () => {
  it('adds up what each batch deleted', () => {
    const counts = addPruneCounts(addPruneCounts(NO_PRUNED_ROWS, { events: 5000 }), {
      events: 12,
      migrations: 3,
      reservations: 1,
    });
    expect(counts).toEqual({ events: 5012, migrations: 3, reservations: 1 });
    expect(NO_PRUNED_ROWS).toEqual({ events: 0, migrations: 0, reservations: 0 });
  });

  it('starts another batch only within its budget', () => {
    expect(withinPruneBudget(1_000, 1_000, 600_000)).toBe(true);
    expect(withinPruneBudget(1_000, 600_999, 600_000)).toBe(true);
    expect(withinPruneBudget(1_000, 601_000, 600_000)).toBe(false);
  });
});

describe("the Temporal namespace's retention", () => {
  it('is the same number of days, in seconds', () => {
    expect(retentionSeconds(30)).toBe(2_592_000);
    expect(retentionSeconds(1)).toBe(86_400);
  });

  it('is set only when it differs', () => {
    expect(namespaceRetentionChange(86_400, 30)).toBe(2_592_000);
    expect(namespaceRetentionChange(null, 7)).toBe(604_800);
    expect(namespaceRetentionChange(2_592_000, 30)).toBeNull();
  });
});
