import { isTerminalPhase } from './migration-phases.ts';

/**
 * How long the history is kept: events and finished migrations older than RETENTION_DAYS are pruned daily by
 * the `prune-history` schedule, and Temporal keeps closed runs' histories for as many days (the namespace's
 * retention), so the database and Temporal forget the same past. A migration's events go with the migration:
 * its history stays whole for as long as the migration itself is listed.
 */
export const RETENTION_DAYS_VARIABLE = 'RETENTION_DAYS';
export const DEFAULT_RETENTION_DAYS = 30;
/** Less would prune runs and rows while someone may still be looking at what just happened. */
export const MIN_RETENTION_DAYS = 1;
/** Ten years: past that "off" says it better. */
export const MAX_RETENTION_DAYS = 3650;
export const RETENTION_OFF_WORDS = ['off', 'never'] as const;

/** Days of history kept; null: nothing is pruned and the namespace's retention is left as it is. */
export type RetentionDays = number | null;

export type RetentionReading = { days: RetentionDays } | { problem: string };

/**
 * RETENTION_DAYS as written: unset is the default, 'off' (or 'never') keeps everything. 0 is refused rather
 * than guessed at: it could mean "keep nothing" as well as "never prune".
 */
export function parseRetentionDays(raw: string | undefined): RetentionReading {
  const value = raw?.trim().toLowerCase();
  if (value === undefined || value === '') return { days: DEFAULT_RETENTION_DAYS };
  if ((RETENTION_OFF_WORDS as readonly string[]).includes(value)) return { days: null };
  const days = Number(value);
  if (!/^\d+$/.test(value) || days < MIN_RETENTION_DAYS || days > MAX_RETENTION_DAYS) {
    return {
      problem: `${RETENTION_DAYS_VARIABLE} must be a number of days from ${MIN_RETENTION_DAYS} to ${MAX_RETENTION_DAYS}, or 'off' to keep everything, got '${raw?.trim()}'`,
    };
  }
  return { days };
}

const DAY_MS = 86_400_000;

/** Whatever ended or happened before this instant is prunable. */
export function retentionCutoff(now: Date, days: number): Date {
  return new Date(now.getTime() - days * DAY_MS);
}

export interface MigrationAge {
  phase: string;
  finishedAt: Date | null;
}

/** A migration goes once it is over and ended before the cutoff; one with no end time is kept. */
export function isPrunableMigration(migration: MigrationAge, cutoff: Date): boolean {
  return isTerminalPhase(migration.phase) && migration.finishedAt !== null && migration.finishedAt < cutoff;
}

export interface EventAge {
  subjectKind: string;
  at: Date;
}

/**
 * An event about a migration goes with its migration, whatever its own age, and never while the migration is
 * active or recent; one whose migration no longer exists goes by its age, as host, guest and rule events do.
 */
export function isPrunableEvent(
  event: EventAge,
  /** The migration a 'migration' event is about; undefined when there is no such row. */
  migration: MigrationAge | undefined,
  cutoff: Date,
): boolean {
  if (event.subjectKind === 'migration' && migration !== undefined) {
    return isPrunableMigration(migration, cutoff);
  }
  return event.at < cutoff;
}

/**
 * Rows per DELETE: a first prune after a year of history takes many short statements, each holding its locks
 * briefly and well within the statement timeout, instead of one long one.
 */
export const PRUNE_BATCH_ROWS = 5_000;
/** Finished migrations taken at a time; their events are deleted PRUNE_BATCH_ROWS at a time before them. */
export const PRUNE_BATCH_MIGRATIONS = 500;
/** One run stops after this long; the next day's run goes on where it stopped. */
export const DEFAULT_PRUNE_BUDGET_MS = 10 * 60_000;

export interface PruneCounts {
  events: number;
  migrations: number;
  reservations: number;
}

export const NO_PRUNED_ROWS: PruneCounts = { events: 0, migrations: 0, reservations: 0 };

export function addPruneCounts(a: PruneCounts, b: Partial<PruneCounts>): PruneCounts {
  return {
    events: a.events + (b.events ?? 0),
    migrations: a.migrations + (b.migrations ?? 0),
    reservations: a.reservations + (b.reservations ?? 0),
  };
}

/** Another batch starts only while the run is within its budget. */
export function withinPruneBudget(startedMs: number, nowMs: number, budgetMs: number): boolean {
  return nowMs - startedMs < budgetMs;
}

export interface PruneHistoryInput {
  retentionDays: number;
  /** Absent: DEFAULT_PRUNE_BUDGET_MS. */
  budgetMs?: number;
}

export interface PruneHistoryResult extends PruneCounts {
  /** ISO time: what ended or happened before it was prunable. */
  cutoff: string;
  /** false: the budget ran out with prunable rows left (the next run takes them). */
  done: boolean;
}

export const PRUNE_HISTORY_SCHEDULE_ID = 'prune-history';
export const PRUNE_HISTORY_WORKFLOW_ID = 'prune-history';
export const PRUNE_HISTORY_EVERY_MS = DAY_MS;

export function retentionSeconds(days: number): number {
  return (days * DAY_MS) / 1000;
}

/** The namespace retention to set, in seconds, or null when it already matches. */
export function namespaceRetentionChange(currentSeconds: number | null, days: number): number | null {
  const wanted = retentionSeconds(days);
  return currentSeconds === wanted ? null : wanted;
}
