import { existsSync } from 'node:fs';
import path from 'node:path';
import { DEFAULTS, influxSettings } from '../../../domain/config.ts';
import { guestImageDir } from '../cache-dir.ts';
import { entryExists, runNodeApp, startNodeApp } from '../node-app.ts';
import { LOOPBACK } from '../ports.ts';
import type { ManagedProcess } from '../process.ts';
import { httpStatus, waitUntil } from '../wait.ts';
import { LauncherApi, listHosts } from './api-client.ts';
import type { LaunchContext } from './context.ts';
import { AGENT_NAMES, agentDir, logFile } from './data-layout.ts';
import type { Infrastructure } from './infrastructure.ts';

export const API_ENTRY = 'api/main.ts';
export const WORKER_ENTRY = 'workers/main.ts';
export const AGENT_ENTRY = 'agent/main.ts';
export const MIGRATE_ENTRY = 'db/migrate.ts';

export interface Tokens {
  /** The bootstrap admin token: the API's, and this launcher's (never an agent's). */
  api: string;
  /** AGENT_CREDENTIAL_KEY: the API's and the worker's only. */
  agentCredentialKey: string;
  /** AGENT_PEER_TOKEN: the agents', accepted on their peer routes only. */
  peer: string;
}

/** A program of the project that is not written yet: the launcher says so and goes on without it. */
export function missingEntry(ctx: LaunchContext, entry: string, consequence: string): boolean {
  if (entryExists(entry)) return false;
  ctx.say(`NOTE: ${entry} does not exist yet: ${consequence}`);
  return true;
}

export async function migrateSchema(ctx: LaunchContext, infra: Infrastructure): Promise<void> {
  if (missingEntry(ctx, MIGRATE_ENTRY, 'schema migrations skipped')) return;
  ctx.say('PostgreSQL: applying schema migrations (db/migrate.ts)');
  await runNodeApp({
    name: 'migrate',
    entry: MIGRATE_ENTRY,
    env: { ...ctx.env, DATABASE_URL: infra.databaseUrl },
    logFile: logFile(ctx.layout, 'migrate'),
  });
}

/** The environment the API and the worker share. */
function serviceEnv(
  ctx: LaunchContext,
  infra: Infrastructure,
  apiPort: number,
  tokens: Tokens,
): NodeJS.ProcessEnv {
  return {
    ...ctx.env,
    API_HOST: LOOPBACK,
    API_PORT: String(apiPort),
    API_TOKEN: tokens.api,
    AGENT_CREDENTIAL_KEY: tokens.agentCredentialKey,
    DATABASE_URL: infra.databaseUrl,
    TEMPORAL_ADDRESS: infra.temporal.address,
    TEMPORAL_NAMESPACE: infra.temporal.namespace,
    TEMPORAL_TASK_QUEUE: ctx.env.TEMPORAL_TASK_QUEUE || DEFAULTS.taskQueue,
    ETCD_ENDPOINTS: infra.etcdEndpoints.join(','),
    ETCD_PREFIX: ctx.env.ETCD_PREFIX || DEFAULTS.etcdPrefix,
    INFLUX_URL: infra.influxUrl,
    INFLUX_DB: influxSettings(ctx.env).database,
  };
}

/** The worker, then the API; resolves when GET /healthz answers 200. Null when the API is not written yet. */
export async function startApiAndWorker(
  ctx: LaunchContext,
  infra: Infrastructure,
  apiPort: number,
  tokens: Tokens,
): Promise<LauncherApi | null> {
  const env = serviceEnv(ctx, infra, apiPort, tokens);
  if (!missingEntry(ctx, WORKER_ENTRY, 'no worker: workflows will not run')) {
    ctx.say('worker: starting (workers/main.ts)');
    addApp(
      ctx,
      'worker',
      startNodeApp({ name: 'worker', entry: WORKER_ENTRY, env, logFile: logFile(ctx.layout, 'worker') }),
    );
  }
  if (missingEntry(ctx, API_ENTRY, 'no API, agents or demo guests; the infrastructure stays up')) return null;
  ctx.say(`API: starting on http://${LOOPBACK}:${apiPort} (api/main.ts)`);
  const api = startNodeApp({ name: 'api', entry: API_ENTRY, env, logFile: logFile(ctx.layout, 'api') });
  addApp(ctx, 'api', api);
  const baseUrl = `http://${LOOPBACK}:${apiPort}`;
  await waitUntil(async () => (await httpStatus(`${baseUrl}/healthz`)) === 200, {
    what: `the API to answer GET /healthz on ${baseUrl}`,
    timeoutMs: 90_000,
    process: api,
    signal: ctx.signal,
  });
  return new LauncherApi(baseUrl, tokens.api);
}

/** What the launcher's own environment may hold that an agent must not. */
const AGENT_FORBIDDEN_ENV = new Set(['API_TOKEN', 'AGENT_CREDENTIAL_KEY', 'AGENT_TOKEN']);

/**
 * The real enrolment: an agent without a stored credential gets a one-time enrolment token for its name, made
 * through the API with the bootstrap admin token (POST /v1/enrolment-tokens); it trades it for its credential.
 */
async function enrolmentEnv(ctx: LaunchContext, api: LauncherApi, name: string): Promise<NodeJS.ProcessEnv> {
  if (existsSync(path.join(agentDir(ctx.layout, name), 'credential'))) return {};
  const { status, json } = await api.request('POST', '/v1/enrolment-tokens', {
    name: `dev-stack-${name}`,
    host: name,
    expires_in: '10m',
  });
  const token = (json as { token?: unknown } | null)?.token;
  if (status !== 201 || typeof token !== 'string') {
    throw new Error(`POST /v1/enrolment-tokens for ${name}: ${status} ${JSON.stringify(json)}`);
  }
  ctx.say(`agent ${name}: enrolling with a one-time enrolment token`);
  return { AGENT_ENROLMENT_TOKEN: token };
}

/** host-1..3 on loopback; resolves when the API lists all three online. */
export async function startAgents(
  ctx: LaunchContext,
  infra: Infrastructure,
  api: LauncherApi,
  tokens: Tokens,
): Promise<Record<string, string>> {
  if (missingEntry(ctx, AGENT_ENTRY, 'no host agents or demo guests')) return {};
  const urls: Record<string, string> = {};
  const processes: ManagedProcess[] = [];
  for (const name of AGENT_NAMES) {
    const port = ctx.ports.agents[name] as number;
    urls[name] = `http://${LOOPBACK}:${port}`;
    ctx.say(`agent ${name}: starting on ${urls[name]}`);
    const enrolment = await enrolmentEnv(ctx, api, name);
    // An agent holds neither the admin token nor the credential key, even when this shell has them.
    const agentBaseEnv = Object.fromEntries(
      Object.entries(ctx.env).filter(([key]) => !AGENT_FORBIDDEN_ENV.has(key)),
    );
    const agent = startNodeApp({
      name: `agent ${name}`,
      entry: AGENT_ENTRY,
      env: {
        ...agentBaseEnv,
        ...enrolment,
        AGENT_NAME: name,
        AGENT_HOST: LOOPBACK,
        AGENT_PORT: String(port),
        AGENT_DIR: agentDir(ctx.layout, name),
        AGENT_PEER_TOKEN: tokens.peer,
        AGENT_DRIVER: 'qemu',
        SHARED_STORAGE_DIR: ctx.layout.sharedStorage,
        GUEST_IMAGE_DIR: guestImageDir(ctx.env),
        ETCD_ENDPOINTS: infra.etcdEndpoints.join(','),
        ETCD_PREFIX: ctx.env.ETCD_PREFIX || DEFAULTS.etcdPrefix,
        INFLUX_URL: infra.influxUrl,
        INFLUX_DB: influxSettings(ctx.env).database,
        API_URL: api.baseUrl,
      },
      logFile: logFile(ctx.layout, `agent-${name}`),
      // An agent stops its QEMU guests before it exits: give it the time to.
      graceMs: 30_000,
    });
    ctx.stack.add(`agent ${name}`, { process: agent, stop: () => agent.stop() }, 'agents');
    processes.push(agent);
  }
  await waitUntil(
    async () => {
      const online = (await listHosts(api)).filter(
        (h) => AGENT_NAMES.includes(h.name as never) && h.status === 'online',
      );
      return online.length === AGENT_NAMES.length;
    },
    {
      what: `GET /v1/hosts to list ${AGENT_NAMES.join(', ')} online`,
      timeoutMs: 90_000,
      process: processes,
      signal: ctx.signal,
    },
  );
  return urls;
}

function addApp(ctx: LaunchContext, name: string, child: ManagedProcess): void {
  ctx.stack.add(name, { process: child, stop: () => child.stop() });
}
