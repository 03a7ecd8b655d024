/**
 * The API's JSON views the benchmarks read (the fields they use; api/response-schemas.ts has them all). Lists
 * answer `{ items: [...] }`; a single resource is bare (docs/api.md).
 */

/** A list's answer. */
export interface ListOf<T> {
  items: T[];
}

/** GET /v1/hosts/:id/events: newest first. */
export interface HostEvent {
  action: string;
  notes: string;
  data: Record<string, unknown>;
  at: string;
}

/** GET /v1/servers/:id */
export interface ServerView {
  id: string;
  status: string;
  lastError: string | null;
  host: { id: string; name: string | null };
  live: { status?: string; heartbeat?: { counter: number } | null } | null;
}

/** GET /v1/migrations (newest first); timings: per phase, database clock, epoch ms. */
export interface MigrationRow {
  id: string;
  kind: string;
  trigger: string;
  phase: string;
  error: string | null;
  workflowId: string | null;
  guest: { id: string; name: string | null };
  source: { id: string; name: string | null };
  destination: { id: string; name: string | null } | null;
  timings: Record<string, { startedAt: number; endedAt?: number }>;
  requestedAt: string;
  finishedAt: string | null;
}
