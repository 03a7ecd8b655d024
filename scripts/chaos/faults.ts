/**
 * The faults, each injected at an instant of one migration chosen by the seeded PRNG. inject()
 * resolves once the stack is whole again (killed processes restarted, stopped ones resumed), so
 * the runner can check the invariant against every agent afterwards.
 */
import { sleep } from '../services/proc-table.ts';
import type { ChaosStack } from './stack.ts';

export const FAULTS = [
  'kill-worker',
  'kill-source-agent',
  'kill-destination-agent',
  'sigstop-agent',
  'postgres-down',
  'restart-temporal',
  'kill-api-at-post',
  'cancel-near-completion',
  'force-complete-vs-cancel',
  'kill-source-host-after-commit',
] as const;
export type FaultName = (typeof FAULTS)[number] | 'none';

export interface FaultOptions {
  /** How long an agent stays SIGSTOPped. */
  sigstopMs: number;
  /** How long PostgreSQL stays down. */
  postgresDownMs: number;
  /** Pause between a SIGKILL of an agent and its restart. */
  agentRestartDelayMs: number;
}

export const DEFAULT_FAULT_OPTIONS: FaultOptions = {
  sigstopMs: 120_000,
  postgresDownMs: 60_000,
  agentRestartDelayMs: 1_000,
};

/** mulberry32: small, seedable, good enough to pick faults and instants reproducibly. */
export function makeRng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface ApiResult {
  status: number;
  body: Record<string, unknown>;
}

export interface FaultContext {
  fault: FaultName;
  stack: ChaosStack;
  rng: () => number;
  options: FaultOptions;
  source: string;
  destination: string;
  guestId: string;
  guestName: string;
  /** Expected time from the POST to QEMU's completion (calibrated by a migration without fault). */
  expectedMs: number;
  /** When the POST left (epoch ms). */
  requestAt: number;
  /** Destination host id (the database's), for the commit probe. */
  destinationHostId: string;
  api(method: string, path: string, body?: unknown): Promise<ApiResult>;
  /** The guest's host id in the database, null while it cannot be read (PostgreSQL down). */
  guestHostId(): Promise<string | null>;
  /** The migration's phase in the database, null while it cannot be read. */
  phase(migrationId: string): Promise<string | null>;
  note(message: string): void;
}

/** What the fault did, for the report: its actions with times relative to the POST. */
export interface FaultRun {
  /** Resolves once the stack is whole again. */
  done: Promise<void>;
}

const isTerminal = (phase: string | null): boolean =>
  phase === 'completed' || phase === 'failed' || phase === 'cancelled';

/**
 * Starts the fault for a migration whose POST has left (or, for kill-api-at-post, is about to:
 * see postWithApiKill). `migrationId` resolves when the API answered.
 */
export function injectFault(ctx: FaultContext, migrationId: Promise<string | null>): FaultRun {
  const at = (delayMs: number) => sleep(Math.max(0, ctx.requestAt + delayMs - Date.now()));
  const randomInstant = () => Math.round(ctx.rng() * ctx.expectedMs * 1.1);
  const { stack } = ctx;

  const killAgentAndRestart = async (host: string) => {
    await at(randomInstant());
    ctx.note(`SIGKILL agent ${host}`);
    stack.killAgent(host);
    await sleep(ctx.options.agentRestartDelayMs);
    await stack.restartAgent(host);
    ctx.note(`agent ${host} restarted`);
  };

  const run = async (): Promise<void> => {
    switch (ctx.fault) {
      case 'none':
      case 'kill-api-at-post':
        return;
      case 'kill-worker': {
        await at(randomInstant());
        ctx.note('SIGKILL worker');
        stack.killWorker();
        stack.startWorker();
        ctx.note('new worker started');
        return;
      }
      case 'kill-source-agent':
        return killAgentAndRestart(ctx.source);
      case 'kill-destination-agent':
        return killAgentAndRestart(ctx.destination);
      case 'sigstop-agent': {
        const host = ctx.rng() < 0.5 ? ctx.source : ctx.destination;
        await at(randomInstant());
        ctx.note(`SIGSTOP agent ${host} for ${ctx.options.sigstopMs} ms`);
        stack.pauseAgent(host);
        await sleep(ctx.options.sigstopMs);
        stack.resumeAgent(host);
        ctx.note(`SIGCONT agent ${host}`);
        return;
      }
      case 'postgres-down': {
        await at(randomInstant());
        ctx.note(`PostgreSQL stopped for ${ctx.options.postgresDownMs} ms`);
        const stoppedAt = Date.now();
        await stack.stopPostgres();
        await sleep(Math.max(0, stoppedAt + ctx.options.postgresDownMs - Date.now()));
        await stack.startPostgresAgain();
        ctx.note('PostgreSQL started again');
        return;
      }
      case 'restart-temporal': {
        await at(randomInstant());
        ctx.note('Temporal server restarting');
        await stack.restartTemporal();
        ctx.note('Temporal server back');
        return;
      }
      case 'cancel-near-completion': {
        const id = await migrationId;
        if (!id) return;
        await at(ctx.expectedMs + Math.round((ctx.rng() * 2 - 1) * 1_000));
        const res = await ctx.api('POST', `/v1/migrations/${id}/cancel`);
        ctx.note(`cancel → ${res.status} ${String((res.body.error as { code?: string })?.code ?? '')}`);
        return;
      }
      case 'force-complete-vs-cancel': {
        const id = await migrationId;
        if (!id) return;
        await at(randomInstant());
        const cancelFirst = ctx.rng() < 0.5;
        const fire = (what: 'cancel' | 'force-complete') =>
          ctx.api('POST', `/v1/migrations/${id}/${what}`).then((res) => {
            ctx.note(`${what} → ${res.status} ${String((res.body.error as { code?: string })?.code ?? '')}`);
          });
        await Promise.all(
          cancelFirst ? [fire('cancel'), fire('force-complete')] : [fire('force-complete'), fire('cancel')],
        );
        return;
      }
      case 'kill-source-host-after-commit': {
        const id = await migrationId;
        if (!id) return;
        const deadline = Date.now() + 10 * 60_000;
        while (Date.now() < deadline) {
          if ((await ctx.guestHostId()) === ctx.destinationHostId) break;
          if (isTerminal(await ctx.phase(id))) {
            ctx.note('migration ended before any commit: nothing to kill');
            return;
          }
          await sleep(20);
        }
        ctx.note(`commit seen: SIGKILL host ${ctx.source} (agent and QEMUs)`);
        await stack.killHost(ctx.source);
        await sleep(Math.max(ctx.options.agentRestartDelayMs, 2_000));
        await stack.restartAgent(ctx.source);
        ctx.note(`agent ${ctx.source} restarted`);
        return;
      }
    }
  };
  return { done: run() };
}

/**
 * kill-api-at-post: the POST leaves, and within a few ms (between the row insert and the workflow
 * start, approximately) the API is SIGKILLed; it is started again and the request retried until the
 * API answers it. Returns the final answer and every answer on the way.
 */
export async function postWithApiKill(
  ctx: FaultContext,
  post: () => Promise<ApiResult>,
): Promise<{ result: ApiResult; attempts: string[] }> {
  const attempts: string[] = [];
  const killAfter = Math.round(ctx.rng() * 40);
  const first = post().then(
    (r) => `answered ${r.status}`,
    (e: unknown) => `no answer (${e instanceof Error ? e.message : String(e)})`,
  );
  await sleep(killAfter);
  ctx.note(`SIGKILL API ${killAfter} ms after the POST`);
  ctx.stack.killApi();
  attempts.push(`first POST: ${await first}`);
  await ctx.stack.startApi();
  ctx.note('API restarted; retrying the POST');
  for (let i = 0; i < 20; i++) {
    try {
      const result = await post();
      attempts.push(`retry ${i + 1}: ${result.status}`);
      if (result.status === 202) return { result, attempts };
      const details = result.body.error as { code?: string; details?: { migrationId?: string } } | undefined;
      if (result.status === 409) return { result, attempts };
      if (details?.code !== 'unavailable') return { result, attempts };
    } catch (error) {
      attempts.push(`retry ${i + 1}: ${error instanceof Error ? error.message : String(error)}`);
    }
    await sleep(500);
  }
  throw new Error(`POST never answered after the API restart: ${attempts.join('; ')}`);
}
