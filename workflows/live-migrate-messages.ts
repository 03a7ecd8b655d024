import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';
import type { MigrationProgress } from '../domain/live-migration.ts';
import type { CheckResult } from '../domain/prechecks.ts';

export type LiveMigrationPhase =
  | 'prechecks'
  | 'queued'
  | 'preparing'
  | 'copying'
  | 'switching-over'
  | 'verifying'
  | 'committing'
  | 'cleaning'
  | 'rolling-back'
  | 'completed'
  | 'failed'
  | 'cancelled';

/** What the API waits for before it answers a live-migrate request. */
export type PrecheckAnswer =
  | { ok: true; destination: { id: string; name: string } }
  | { ok: false; reason: string; failures: CheckResult[] };

export interface LiveMigrationView {
  migrationId: string;
  phase: LiveMigrationPhase;
  destination: { id: string; name: string } | null;
  progress: MigrationProgress | null;
  error: string | null;
}

export const progressQuery = defineQuery<LiveMigrationView>('progress');
/** Sent by the monitoring activity, so a query answers with live figures without any I/O. */
export const progressSignal = defineSignal<[MigrationProgress]>('progress');
export const precheckUpdate = defineUpdate<PrecheckAnswer>('awaitPrechecks');
/** Operator force-complete (F10): post-copy when allowed, else pause the guest so the copy finishes. */
export const forceCompleteSignal = defineSignal('forceComplete');
