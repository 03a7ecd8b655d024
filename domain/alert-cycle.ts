import { DEFAULT_TIMINGS, type LiveMigrationTimings } from './live-migration.ts';

/** Every timer of an alert cycle, as an input so tests can run them small. */
export interface AlertCycleTimings {
  /** The migration lock is held this long past its last renewal: a dead batch frees it within this. */
  lockLeaseMs: number;
  lockRenewIntervalMs: number;
  /** Timers of the batch's live migrations. */
  migration: LiveMigrationTimings;
}

export const DEFAULT_ALERT_CYCLE_TIMINGS: AlertCycleTimings = {
  lockLeaseMs: 120_000,
  lockRenewIntervalMs: 20_000,
  migration: DEFAULT_TIMINGS,
};

export interface AlertCycleInput {
  ruleId: string;
  timings?: AlertCycleTimings;
}

export interface AlertCycleMoveOutcome {
  guest: string;
  from: string;
  to: string;
  migrationId: string | null;
  outcome: 'completed' | 'failed' | 'refused';
  error: string | null;
}

export type AlertCycleOutcome =
  | { outcome: 'rule-gone' }
  | { outcome: 'nothing-to-move' }
  | { outcome: 'skipped'; holder: string }
  | { outcome: 'migrated'; moves: AlertCycleMoveOutcome[]; lockLost: boolean };
