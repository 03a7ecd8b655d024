/** Every phase a migration record can be in, in the order a successful live migration passes through them. */
export const migrationPhases = [
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
  'completed',
  'failed',
  'cancelled',
] as const;

export type MigrationPhase = (typeof migrationPhases)[number];

/** A migration in one of these is over: nothing runs for it any more. */
export const terminalMigrationPhases = [
  'completed',
  'failed',
  'cancelled',
] as const satisfies readonly MigrationPhase[];

export type TerminalMigrationPhase = (typeof terminalMigrationPhases)[number];

export type ActiveMigrationPhase = Exclude<MigrationPhase, TerminalMigrationPhase>;

export function isTerminalPhase(phase: string): phase is TerminalMigrationPhase {
  return (terminalMigrationPhases as readonly string[]).includes(phase);
}

/** At most one migration of a guest is in one of these at a time (a unique index holds the database to it). */
export const activeMigrationPhases = migrationPhases.filter(
  (phase): phase is ActiveMigrationPhase => !isTerminalPhase(phase),
);
