import { randomBytes, randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Client } from '@temporalio/client';
import { inject } from 'vitest';
import { influxqlReader } from '../../activities/alert-metrics.ts';
import { agentCredentials } from '../../activities/agent-credentials.ts';
import { loadOrCreateHostId } from '../../agent/host-id.ts';
import { hostCredential } from '../../domain/host-credential.ts';
import { defaultTlsDir } from '../../agent/settings.ts';
import { assertNoSecrets, rememberPrivateKeys, rememberSecret } from './secret-ledger.ts';
import { assertStackHoldsNoSecrets } from './secret-scan.ts';
import type { RunningAgent } from '../../agent/start-agent.ts';
import type { AgentOptions } from '../../agent/settings.ts';
import type { SimHostProfile } from '../../agent/drivers/sim.ts';
import type { AlertCycleTimings } from '../../domain/alert-cycle.ts';
import { DEFAULT_TIMINGS, type LiveMigrationTimings } from '../../domain/live-migration.ts';
import type { HostDownTimings } from '../../domain/host-down-timing.ts';
import {
  type ApiResponse,
  type InProcessStack,
  startInProcessStack,
} from '../../scripts/services/in-process-stack.ts';
import { createTestDatabase, type TestDatabase } from './database.ts';

export type { ApiResponse };

/**
 * The orchestrator in the test process (scripts/services/in-process-stack.ts) against the servers of
 * test/global-setup.ts, with what only tests need: its own database, task queue, etcd prefix and migration
 * lock, small timers, and the secret ledger (every token and credential it makes is remembered, every API
 * answer and, at its stop, everything the stack holds is scanned for them).
 */
/** Small timers so a test exercises every path in seconds rather than minutes. */
export const TEST_TIMINGS: LiveMigrationTimings = {
  ...DEFAULT_TIMINGS,
  pollIntervalMs: 200,
  progressSaveIntervalMs: 1_000,
  activityHeartbeatTimeoutMs: 5_000,
  aliveCheckTimeoutMs: 15_000,
  precheckAnswerTimeoutMs: 15_000,
};

export interface HostPlan {
  name: string;
  driver?: 'sim' | 'qemu';
  sim?: Partial<SimHostProfile>;
  networks?: string[];
  sharedStorageDir?: string;
  memoryMb?: number;
  cpus?: number;
  /** false: the agent holds no etcd lease, so the host is offline. */
  liveness?: boolean;
  /** The host's address on a dedicated migration network. */
  migrationAddress?: string;
  /** The health lease's TTL (default 5 s). */
  ttlSeconds?: number;
  /** The agent's own etcd endpoints (a test's cuttable proxy), instead of the stack's. */
  etcdEndpoints?: string[];
  /**
   * true: the real enrolment (a one-time token made through the API, traded by the agent for its credential,
   * stored in its dir). Default: the stack hands the agent its derived credential and registers it as admin.
   */
  enrol?: boolean;
}

export interface MiniStack {
  db: TestDatabase;
  apiUrl: string;
  apiToken: string;
  /** AGENT_CREDENTIAL_KEY of this stack's API and worker: each host's credential is derived from it. */
  agentCredentialKey: string;
  /** AGENT_PEER_TOKEN of this stack's agents (accepted on the peer routes only). */
  peerToken: string;
  /** The credential of the host of this name (as the stack's API derives it: generation 1). */
  agentCredential(name: string): string;
  temporal: Client;
  taskQueue: string;
  /** This stack's `migration-lock` singleton. */
  lockWorkflowId: string;
  etcdPrefix: string;
  agents: Map<string, RunningAgent>;
  agentLogs: Map<string, string[]>;
  dir: string;
  api: InProcessStack['api'];
  startWorker: InProcessStack['startWorker'];
  /** Starts a host's agent again on its own dir (so with its host id), after its `stop`. */
  restartAgent(name: string): Promise<RunningAgent>;
  stopWorker(): Promise<void>;
  stop(): Promise<void>;
}

export interface MiniStackOptions {
  hosts: HostPlan[];
  timings?: LiveMigrationTimings;
  /** false: the test starts its own worker(s). */
  worker?: boolean;
  /** The migrations' worker's workflow task slots; default the SDK's 40. */
  workerTaskSlots?: number;
  /** Agents write their usage to this InfluxDB database (the test setup's server), and alert cycles read it. */
  metrics?: { database: string; intervalSeconds: number };
  alertCycleTimings?: AlertCycleTimings;
  /** Watch the hosts' health keys as a worker process does, starting hostDown and hostReturn runs. */
  hostWatch?: HostDownTimings;
}

export async function startMiniStack(options: MiniStackOptions): Promise<MiniStack> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'vmmig-stack-'));
  const db = await createTestDatabase(inject('postgresAdminUrl'));
  const etcdEndpoints = inject('etcdEndpoints');
  const etcdPrefix = `test-${randomBytes(4).toString('hex')}`;
  const apiToken = randomUUID();
  const agentCredentialKey = randomBytes(32).toString('base64url');
  const peerToken = randomBytes(32).toString('base64url');
  rememberSecret('the bootstrap API token', apiToken);
  rememberSecret('AGENT_CREDENTIAL_KEY', agentCredentialKey);
  rememberSecret('the agent peer token', peerToken);
  await rememberPrivateKeys(defaultTlsDir(process.env));
  const hostIds = new Map<string, string>();
  const enrolledDirs = new Map<string, string>();
  const agentCredential = (name: string): string => {
    const enrolledDir = enrolledDirs.get(name);
    if (enrolledDir) return readFileSync(path.join(enrolledDir, 'credential'), 'utf8').trim();
    const hostId = hostIds.get(name);
    if (!hostId) throw new Error(`no agent ${name}`);
    return hostCredential(agentCredentialKey, hostId, 1);
  };
  const taskQueue = `test-${randomUUID()}`;
  // The lock is a singleton per namespace; every stack shares the test server's, so each gets its own.
  const lockWorkflowId = `migration-lock-${taskQueue}`;
  const influxUrl = inject('influxUrl');
  const timings = options.timings ?? TEST_TIMINGS;

  const stack = await startInProcessStack({
    db: db.db,
    databaseUrl: db.url,
    temporal: { address: inject('temporalAddress'), namespace: inject('temporalNamespace') },
    taskQueue,
    etcd: { endpoints: etcdEndpoints, prefix: etcdPrefix },
    apiToken,
    agentCredentials: agentCredentials(db.db, agentCredentialKey),
    agentCredentialKey,
    timings,
    ...(options.alertCycleTimings ? { alertCycleTimings: options.alertCycleTimings } : {}),
    ...(options.metrics
      ? { metrics: influxqlReader({ url: influxUrl, database: options.metrics.database }) }
      : {}),
    migrationLockWorkflowId: lockWorkflowId,
    worker: options.worker !== false,
    ...(options.workerTaskSlots ? { workerTaskSlots: options.workerTaskSlots } : {}),
    ...(options.hostWatch
      ? {
          hostWatch: {
            timings: options.hostWatch,
            log: (line: string) => (process.env.DEBUG_HOST_WATCH ? console.log(line) : undefined),
          },
        }
      : {}),
    onApiAnswer: checkAnswerForSecrets,
  });
  const { api, apiUrl } = stack;

  const agentLogs = new Map<string, string[]>();
  try {
    for (const plan of options.hosts) {
      const logs: string[] = [];
      agentLogs.set(plan.name, logs);
      // Test-only: the stack hands each agent its derived credential (and registers it with the admin token);
      // test/integration/host-credentials.test.ts covers the real enrolment.
      const agentDir = path.join(dir, 'agents', plan.name);
      let enrolmentToken: string | undefined;
      if (plan.enrol) {
        enrolledDirs.set(plan.name, agentDir);
        const made = await api<{ token: string }>('POST', '/v1/enrolment-tokens', { host: plan.name });
        if (made.status !== 201)
          throw new Error(`enrolment token: ${made.status} ${JSON.stringify(made.body)}`);
        enrolmentToken = made.body.token;
      } else {
        hostIds.set(plan.name, await loadOrCreateHostId(agentDir));
        rememberSecret(`the credential of ${plan.name}`, agentCredential(plan.name));
      }
      const agentOptions: AgentOptions = {
        name: plan.name,
        host: '127.0.0.1',
        port: 0,
        dir: agentDir,
        ...(plan.enrol ? {} : { token: agentCredential(plan.name) }),
        peerToken,
        driver: plan.driver ?? 'sim',
        sharedStorageDir: plan.sharedStorageDir ?? path.join(dir, 'shared'),
        guestImageDir: inject('guestImageDir'),
        migrationAddress: plan.migrationAddress ?? null,
        networks: plan.networks ?? ['default'],
        sim: plan.sim,
        cpus: plan.cpus,
        memoryMb: plan.memoryMb,
        liveness:
          plan.liveness === false
            ? null
            : {
                endpoints: plan.etcdEndpoints ?? etcdEndpoints,
                prefix: etcdPrefix,
                ttlSeconds: plan.ttlSeconds ?? 5,
              },
        metrics: options.metrics
          ? {
              url: influxUrl,
              database: options.metrics.database,
              intervalSeconds: options.metrics.intervalSeconds,
            }
          : null,
        // Reports every 2 s: live state (read from the reports) follows quickly enough for the tests' waits.
        registration: enrolmentToken
          ? { apiUrl, enrolmentToken, reportIntervalS: 2 }
          : { apiUrl, apiToken, reportIntervalS: 2 },
        log: (line) => logs.push(line),
        stopGraceMs: 3_000,
      };
      await stack.startAgent(agentOptions);
    }
    await stack.waitForHosts(options.hosts.length);
  } catch (error) {
    // A stack that did not come up leaves nothing running for the next test.
    await stack.stop().catch(() => undefined);
    await db.drop().catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
    throw error;
  }

  return {
    db,
    apiUrl,
    apiToken,
    agentCredentialKey,
    peerToken,
    agentCredential,
    temporal: stack.temporal,
    taskQueue,
    lockWorkflowId,
    etcdPrefix,
    agents: stack.agents,
    agentLogs,
    dir,
    api,
    startWorker: stack.startWorker,
    stopWorker: stack.stopWorker,
    restartAgent: stack.restartAgent,
    async stop() {
      for (const name of enrolledDirs.keys())
        rememberSecret(`the credential of ${name}`, agentCredential(name));
      const leak = await assertStackHoldsNoSecrets({
        databaseUrl: db.url,
        temporal: stack.temporal,
        taskQueue,
        agentLogs,
      }).then(
        () => null,
        (err: Error) => err,
      );
      await stack.stop();
      await db.drop();
      await rm(dir, { recursive: true, force: true });
      if (leak) throw leak;
    },
  };
}

/** Every API answer holds none of the test's secrets; a token or credential it makes is one from then on. */
export function checkAnswerForSecrets(request: string, status: number, text: string): void {
  assertNoSecrets(`the answer ${status} to ${request}`, text);
  // A token made now is in its own answer, once; from here on it is a secret like the others.
  const made = (text ? JSON.parse(text) : null) as { token?: string; credential?: string } | null;
  rememberSecret(`a token made by ${request}`, made?.token);
  rememberSecret(`a credential made by ${request}`, made?.credential);
}
