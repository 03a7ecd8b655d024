import type { MiniStack } from './mini-stack.ts';
import { waitFor } from './wait.ts';

export interface MigrationBody {
  id: string;
  phase: string;
  error: string | null;
  destination: { id: string; name: string | null } | null;
  progress: {
    percent: number;
    transferredBytes: number;
    downtimeMs: number | null;
    status: string;
    passes?: number;
  } | null;
  timings: Record<string, { startedAt: number; endedAt?: number }>;
  checks: { name: string; ok: boolean }[];
  events: { type: string; level: string; message: string; data: Record<string, unknown> }[];
}

export interface ServerBody {
  id: string;
  name: string;
  status: string;
  host: { id: string; name: string };
  live: { status: string; heartbeat: { counter: number } | null } | null;
}

export async function createRunningServer(
  stack: MiniStack,
  body: Record<string, unknown>,
): Promise<ServerBody> {
  const res = await stack.api('POST', '/v1/servers', {
    networks: [{ name: 'default', mac: '52:54:00:00:00:01' }],
    disks: [{ id: 'disk0', sizeMb: 64, storage: 'shared', cache: 'none' }],
    ...body,
  });
  if (res.status !== 202)
    throw new Error(`create ${String(body.name)}: ${res.status} ${JSON.stringify(res.body)}`);
  return waitFor(`${String(body.name)} running`, async () => {
    const server = await stack.api<ServerBody>('GET', `/v1/servers/${String(body.name)}`);
    return server.body.status === 'running' && server.body.live?.heartbeat ? server.body : null;
  });
}

export async function liveMigrate(stack: MiniStack, server: string, options: Record<string, unknown> = {}) {
  return stack.api<{
    id: string;
    destination: { name: string } | null;
    error?: { code: string; message: string; failures: { name: string }[]; field?: string };
  }>('POST', `/v1/servers/${server}/live-migrate`, options);
}

export async function migrationOf(stack: MiniStack, id: string): Promise<MigrationBody> {
  return (await stack.api<MigrationBody>('GET', `/v1/migrations/${id}`)).body;
}

export function waitForPhase(
  stack: MiniStack,
  id: string,
  phases: string[],
  timeoutMs = 60_000,
): Promise<MigrationBody> {
  return waitFor(
    `migration ${id} to reach ${phases.join('/')}`,
    async () => {
      const m = await migrationOf(stack, id);
      return phases.includes(m.phase) ? m : null;
    },
    { timeoutMs, intervalMs: 100 },
  );
}

/** Waits for a migration to end however it ends: completed, failed or cancelled. */
export function waitForMigrationEnd(
  stack: MiniStack,
  id: string,
  timeoutMs = 60_000,
): Promise<MigrationBody> {
  return waitForPhase(stack, id, ['completed', 'failed', 'cancelled'], timeoutMs);
}

export async function agentGuest(stack: MiniStack, host: string, guestId: string) {
  const agent = stack.agents.get(host);
  if (!agent) throw new Error(`no agent ${host}`);
  const res = await fetch(`${agent.url}/v1/guests/${guestId}`, {
    headers: { authorization: `Bearer ${stack.agentCredential(host)}` },
  });
  return {
    status: res.status,
    body: (await res.json()) as { status: string; hypervisorStatus: string | null },
  };
}

export async function reservationCount(stack: MiniStack): Promise<number> {
  const { reservations } = await import('../../db/schema.ts');
  return (await stack.db.db.select().from(reservations)).length;
}

/** Starts a live migration, expects the 202, and waits for it to end however it ends. */
export async function migrateToEnd(
  stack: MiniStack,
  server: string,
  options: Record<string, unknown> = {},
  timeoutMs = 120_000,
): Promise<MigrationBody> {
  const started = await liveMigrate(stack, server, options);
  if (started.status !== 202)
    throw new Error(`live-migrate ${server}: ${started.status} ${JSON.stringify(started.body)}`);
  return waitForMigrationEnd(stack, started.body.id, timeoutMs);
}
