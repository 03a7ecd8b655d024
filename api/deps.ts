import type { Client } from '@temporalio/client';
import type { Db } from '../db/client.ts';
import type { MigrationChanges } from '../db/migration-changes.ts';
import type { AlertMetricsReader } from '../activities/alert-metrics.ts';
import type { AgentCredentials } from '../activities/agent-credentials.ts';
import type { AlertCycleTimings } from '../domain/alert-cycle.ts';
import type { LiveMigrationTimings } from '../domain/live-migration.ts';

export interface ApiDeps {
  db: Db;
  temporal: Client;
  taskQueue: string;
  liveness: { onlineHostIds(): Promise<Set<string>>; isOnline(hostId: string): Promise<boolean> };
  /** Each host's credential, for calling its agent (activities/agent-credentials.ts). */
  agentCredentials: AgentCredentials;
  /** AGENT_CREDENTIAL_KEY: what host credentials are derived from (enrolment, and checking a host's own). */
  agentCredentialKey: string;
  apiToken: string;
  /** Defaults to DEFAULT_TIMINGS; tests pass small ones. */
  liveMigrationTimings?: LiveMigrationTimings;
  /** What a rule's schedule gives its cycles; absent: the cycle's defaults. Tests pass small ones. */
  alertCycleTimings?: AlertCycleTimings;
  /** Wakes a migrate request when its migration's record changes; absent, the request polls the record. */
  migrationChanges?: Pick<MigrationChanges, 'listening' | 'next'>;
  /** Reads InfluxDB for `POST /v1/migration-alerts/:id/plan`. */
  metrics?: AlertMetricsReader;
}
