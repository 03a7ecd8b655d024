import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';
import type { MigrationPhase } from '../domain/migration-phases.ts';
import type { CheckResult } from '../domain/prechecks.ts';

/** Every phase but `pending` (the API's, before the workflow runs); the list itself is in domain/. */
export type LiveMigrationPhase = Exclude<MigrationPhase, 'pending'>;

/** What the API waits for before it answers a live-migrate request. */
export type PrecheckAnswer =
  | { ok: true; destination: { id: string; name: string } }
  | { ok: false; reason: string; failures: CheckResult[] };

export interface LiveMigrationView {
  migrationId: string;
  phase: LiveMigrationPhase;
  destination: { id: string; name: string } | null;
  error: string | null;
}

/** The phase as the workflow knows it; live figures are on the migration row (the monitor writes them). */
export const progressQuery = defineQuery<LiveMigrationView>('progress');
export const precheckUpdate = defineUpdate<PrecheckAnswer>('awaitPrechecks');
/** Operator force-complete (F10): post-copy when allowed, else pause the guest so the copy finishes. */
export const forceCompleteSignal = defineSignal('forceComplete');
