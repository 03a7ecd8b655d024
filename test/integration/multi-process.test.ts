import type { ChildProcess } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Client, WorkflowExecutionInfo } from '@temporalio/client';
import { historyToJSON } from '@temporalio/common/lib/proto-utils.js';
import { Worker } from '@temporalio/worker';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inArray } from 'drizzle-orm';
import type { GuestState } from '../../domain/agent-contract.ts';
import { migrationSlotsWorkflowId } from '../../domain/workflow-ids.ts';
import { hosts, migrations } from '../../db/schema.ts';
import { slotsQuery, type SlotsView } from '../../workflows/migration-slots-messages.ts';
import { workflowsPath } from '../../workers/worker.ts';
import { startApiProcess, type ApiProcess } from '../helpers/api-process.ts';
import { startMiniStack, type MiniStack } from '../helpers/mini-stack.ts';
import {
  createRunningServer,
  liveMigrate,
  waitForMigrationEnd,
  type MigrationBody,
  type ServerBody,
} from '../helpers/migrations.ts';
import { waitFor } from '../helpers/wait.ts';
import { startWorkerProcess, stopProcess, workerIdentity } from '../helpers/worker-process.ts';

/**
 * Production runs several workers and several APIs on one task queue, database and etcd prefix. Here: three
 * real worker processes and two real API processes, requests spread over both APIs, a batch of live
 * migrations larger than the parallel limit, and the worker monitoring a copy stopped mid-run (SIGTERM, then
 * SIGKILL). Every migration must end exactly once, each guest run on the one host its row names, the slots
 * never exceed the limit, and the singletons (the slots workflow, the host watch's runs) run once.
 */

const WORKERS = 3;
const SOURCES = ['s1', 's2'];
const DESTINATIONS = ['d1', 'd2'];
/** A host with no guests whose agent the tests stop and start, for the host watch's runs. */
const SPARE = 'spare';
const LIMITS = {
  parallelMigrationsPerCluster: 2,
  parallelOutboundMigrationsPerNode: 2,
  parallelInboundMigrationsPerNode: 2,
};
const BATCH = 6;
/** ~5 s per copy: the batch runs in three waves, long enough to stop a worker in the middle of one. */
const GUEST_MEMORY_MB = 1024;
const BANDWIDTH_MB = 200;
const END_TIMEOUT_MS = 90_000;
/** Starting a replacement worker, the batch, a worker's stop and the end, on a busy two-core machine. */
const TEST_TIMEOUT_MS = 240_000;
const TERMINAL_EVENTS = ['completed', 'failed', 'cancelled'];
/**
 * DEBUG_PROCESSES=1: the processes' output (test/helpers/worker-process.ts), the test's steps, and the history of
 * each run that did not end, saved in the temp dir for Worker.runReplayHistory.
 */
const step = (what: string) =>
  process.env.DEBUG_PROCESSES ? console.log(`${new Date().toISOString()} ${what}`) : undefined;

describe('three workers and two API processes on one stack', () => {
  let stack: MiniStack;
  let apis: ApiProcess[] = [];
  const workers: ChildProcess[] = [];
  let clusterId: string;

  /** Requests alternate between the two API processes. */
  const via = (i: number): MiniStack => apis[i % apis.length]!.stack;

  beforeAll(async () => {
    stack = await startMiniStack({
      hosts: [...SOURCES, ...DESTINATIONS, SPARE].map((name) => ({ name })),
      worker: false,
    });
    await keepWorkers();
    apis = await Promise.all([startApiProcess(stack), startApiProcess(stack)]);
    const limits = await via(1).api('PUT', '/v1/migration-config', LIMITS);
    expect(limits.status, JSON.stringify(limits.body)).toBe(200);
    const [host] = await stack.db.db.select().from(hosts).limit(1);
    clusterId = host!.clusterId;
  }, 180_000);
  afterAll(async () => {
    for (const w of workers) w.kill('SIGKILL');
    await Promise.all(apis.map((a) => a.stop()));
    await stack?.stop();
  });

  /** Three workers, one after the other (each bundles the workflows; the machine has two cores). */
  async function keepWorkers() {
    while (workers.length < WORKERS) {
      workers.push(await startWorkerProcess(stack));
      step(`worker ${workerIdentity(workers.at(-1)!)} polling`);
    }
  }

  it(
    'a worker stopped gracefully mid-run (SIGTERM): every migration ends once, within the limits',
    async () => {
      await keepWorkers();
      const batch = await startBatch('term');
      step('batch started');
      await stopWorkerMonitoringACopy(batch, 'SIGTERM');

      // The host watch: the two workers left both see the spare's key go; one hostDown runs.
      const spare = stack.agents.get(SPARE)!;
      await spare.stop();
      await waitFor(
        'the spare confirmed down',
        async () => (await hostEventActions(SPARE)).includes('host_down'),
        { timeoutMs: 30_000 },
      );
      expect(await closedOrOpenRuns('hostDown', `host-down-${spare.hostId}-`)).toHaveLength(1);
      expect((await hostEventActions(SPARE)).filter((a) => a === 'host_lease_lost')).toHaveLength(1);

      await expectBatchEndedOnce(batch);
    },
    TEST_TIMEOUT_MS,
  );

  it(
    'a worker SIGKILLed mid-run: every migration ends once, within the limits',
    async () => {
      await keepWorkers();
      const batch = await startBatch('kill');
      step('batch started');
      await stopWorkerMonitoringACopy(batch, 'SIGKILL');

      // The spare's agent comes back under a new lease: one hostReturn runs.
      const spare = await stack.restartAgent(SPARE);
      await waitFor(
        'the spare returned',
        async () => (await closedOrOpenRuns('hostReturn', `host-return-${spare.hostId}-`)).length > 0,
        { timeoutMs: 30_000 },
      );
      // The other watcher's start of the same run is refused by its id; give it time to have tried.
      await sleep(2_000);
      expect(await closedOrOpenRuns('hostReturn', `host-return-${spare.hostId}-`)).toHaveLength(1);

      await expectBatchEndedOnce(batch);
    },
    TEST_TIMEOUT_MS,
  );

  interface Batch {
    guests: ServerBody[];
    migrationIds: string[];
    /** Each migration's run, as its row names it. */
    workflowIds: string[];
    slots: SlotsSampler;
  }

  /** BATCH guests on the sources, all live-migrating at once through both APIs: more than the limit allows. */
  async function startBatch(prefix: string): Promise<Batch> {
    const names = Array.from({ length: BATCH }, (_, i) => `${prefix}-${i}`);
    const guests = await Promise.all(
      names.map((name, i) =>
        createRunningServer(via(i), {
          name,
          host: SOURCES[i % SOURCES.length],
          memoryMb: GUEST_MEMORY_MB,
        }),
      ),
    );
    const slots = sampleSlots(stack.temporal, migrationSlotsWorkflowId(clusterId));
    const started = await Promise.all(
      names.map((name, i) =>
        liveMigrate(via(i), name, {
          prefer_host: DESTINATIONS[i % DESTINATIONS.length],
          max_bandwidth_mb: BANDWIDTH_MB,
        }),
      ),
    );
    for (const res of started) expect(res.status, JSON.stringify(res.body)).toBe(202);

    // The last of the batch waits for a slot: a second request for it is refused by either API.
    for (const api of apis) {
      const again = await liveMigrate(api.stack, names.at(-1)!, {});
      expect(again.status, `${api.url}: ${JSON.stringify(again.body)}`).toBe(409);
    }
    const migrationIds = started.map((res) => res.body.id);
    const rows = await stack.db.db
      .select({ id: migrations.id, workflowId: migrations.workflowId })
      .from(migrations)
      .where(inArray(migrations.id, migrationIds));
    const workflowIds = migrationIds.map((id) => rows.find((r) => r.id === id)!.workflowId);
    return { guests, migrationIds, workflowIds, slots };
  }

  /** Stops the worker process that runs some copy's monitor, and waits for it to exit. */
  async function stopWorkerMonitoringACopy({ workflowIds }: Batch, signal: 'SIGTERM' | 'SIGKILL') {
    const victim = await waitFor(
      'a worker monitoring a copy',
      async () => {
        for (const workflowId of workflowIds) {
          const run = await stack.temporal.workflow
            .getHandle(workflowId)
            .describe()
            .catch(() => null);
          const monitor = run?.raw.pendingActivities?.find(
            (a) => a.activityType?.name === 'monitorMigration' && a.lastWorkerIdentity,
          );
          const worker = workers.find((w) => workerIdentity(w) === monitor?.lastWorkerIdentity);
          if (worker) return worker;
        }
        return null;
      },
      { timeoutMs: 30_000, intervalMs: 100 },
    );
    step(`stopping ${workerIdentity(victim)} with ${signal}`);
    workers.splice(workers.indexOf(victim), 1);
    const ended = await stopProcess(victim, signal);
    if (signal === 'SIGTERM') expect(ended).toEqual({ code: 0, signal: null, forced: false });
    else expect(ended.signal).toBe('SIGKILL');
  }

  async function expectBatchEndedOnce({ guests, migrationIds, workflowIds, slots }: Batch) {
    const ended = await waitForEveryEnd(migrationIds, workflowIds);
    step('batch ended');
    const peak = await slots.stop();

    // Ended exactly once: one terminal phase and event, a reason when it failed, one run, one copy started.
    for (const [i, m] of ended.entries()) {
      const guest = guests[i]!;
      expect(['completed', 'failed'], `${guest.name}: ${m.phase} ${m.error}`).toContain(m.phase);
      if (m.phase === 'failed') expect(m.error).toBeTruthy();
      expect(terminalEvents(m), guest.name).toHaveLength(1);
      const runs = await waitFor(`the run of ${guest.name} closed`, async () => {
        const all = await listRuns(`WorkflowId = '${workflowIds[i]}'`);
        return all.every((r) => r.status.name !== 'RUNNING') ? all : null;
      });
      expect(runs, guest.name).toHaveLength(1);
      expect(copiesStarted(m.id, guest.id), guest.name).toBe(1);
    }
    // Any worker may have to replay any run (a stopped worker's runs go on elsewhere).
    expect(await replayErrors([...workflowIds, migrationSlotsWorkflowId(clusterId)])).toEqual([]);
    // Today every one completes; a failure would still be an ending, but say so.
    expect(ended.map((m) => `${m.phase}${m.error ? `: ${m.error}` : ''}`)).toEqual(
      ended.map(() => 'completed'),
    );

    // Each guest is recorded on one host, and that host's agent alone holds it, running.
    const held = await guestsByAgent();
    for (const [i, m] of ended.entries()) {
      const guest = guests[i]!;
      const server = await via(i).api<ServerBody>('GET', `/v1/servers/${guest.name}`);
      const recorded = server.body.host.name;
      expect(recorded, guest.name).toBe(m.phase === 'completed' ? m.destination?.name : guest.host.name);
      const holders = [...held].filter(([, list]) => list.some((g) => g.id === guest.id));
      expect(
        holders.map(([host, list]) => `${host}:${list.find((g) => g.id === guest.id)?.status}`),
        guest.name,
      ).toEqual([`${recorded}:running`]);
    }

    // The slots: never above the limits, the surplus queued, nothing left held; one slots workflow.
    expect(peak.samples).toBeGreaterThan(0);
    expect(peak.holders).toBeLessThanOrEqual(LIMITS.parallelMigrationsPerCluster);
    expect(peak.outbound).toBeLessThanOrEqual(LIMITS.parallelOutboundMigrationsPerNode);
    expect(peak.inbound).toBeLessThanOrEqual(LIMITS.parallelInboundMigrationsPerNode);
    expect(peak.holders).toBe(LIMITS.parallelMigrationsPerCluster);
    expect(peak.queued).toBeGreaterThan(0);
    const final = peak.last!;
    expect(final.holders).toEqual([]);
    expect(final.queue).toEqual([]);
    // No holder lost its lease to the stopped worker and was counted again above the limits.
    const ours = new Set(migrationIds);
    expect((final.reinstated ?? []).filter((r) => ours.has(r.migrationId))).toEqual([]);
    expect(
      await listRuns(`WorkflowId = '${migrationSlotsWorkflowId(clusterId)}' AND ExecutionStatus = 'Running'`),
    ).toHaveLength(1);
  }

  /** Every migration's end, or a failure naming each one that did not end: its phase, last event and run. */
  async function waitForEveryEnd(migrationIds: string[], workflowIds: string[]): Promise<MigrationBody[]> {
    const settled = await Promise.allSettled(
      migrationIds.map((id, i) => waitForMigrationEnd(via(i), id, END_TIMEOUT_MS)),
    );
    const stuck: string[] = [];
    const stuckRuns: string[] = [];
    for (const [i, outcome] of settled.entries()) {
      if (outcome.status === 'fulfilled') continue;
      stuckRuns.push(workflowIds[i]!);
      const m = (await via(i).api<MigrationBody>('GET', `/v1/migrations/${migrationIds[i]}`)).body;
      const run = await stack.temporal.workflow.getHandle(workflowIds[i]!).describe();
      const task = run.raw.pendingWorkflowTask;
      stuck.push(
        `${workflowIds[i]}: phase ${m.phase}, last event ${m.events.at(-1)?.type}, run ${run.status.name}` +
          (task ? `, workflow task attempt ${task.attempt}` : ''),
      );
      if (process.env.DEBUG_PROCESSES) {
        const history = await stack.temporal.workflow.getHandle(workflowIds[i]!).fetchHistory();
        const file = path.join(os.tmpdir(), `multi-process-${workflowIds[i]}.json`);
        await writeFile(file, historyToJSON(history));
        step(`history of ${workflowIds[i]} in ${file}`);
      }
    }
    if (stuck.length > 0) stuck.push(...(await replayErrors(stuckRuns)));
    expect(stuck, 'migrations that did not end').toEqual([]);
    return settled.map((o) => (o as PromiseFulfilledResult<MigrationBody>).value);
  }

  /** Replays the runs on a fresh worker, as a worker taking over a stopped one's runs does: what fails, and why. */
  async function replayErrors(workflowIds: string[]): Promise<string[]> {
    const query = workflowIds.map((id) => `WorkflowId = '${id}'`).join(' OR ');
    const histories = stack.temporal.workflow.list({ query }).intoHistories();
    const errors: string[] = [];
    for await (const replay of Worker.runReplayHistories({ workflowsPath }, histories)) {
      if (replay.error) errors.push(`${replay.workflowId} does not replay: ${replay.error.message}`);
    }
    return errors;
  }

  function terminalEvents(m: MigrationBody) {
    return m.events.filter((e) => TERMINAL_EVENTS.includes(e.type));
  }

  /** How many times a sim agent started this migration's copy (the source logs each start). */
  function copiesStarted(migrationId: string, guestId: string): number {
    const line = `sim migration ${migrationId} of ${guestId} started`;
    return [...stack.agentLogs.values()].flat().filter((l) => l.includes(line)).length;
  }

  /** What each running agent holds, asked of the agents themselves. */
  async function guestsByAgent(): Promise<Map<string, GuestState[]>> {
    const held = new Map<string, GuestState[]>();
    for (const host of [...SOURCES, ...DESTINATIONS, SPARE]) {
      const agent = stack.agents.get(host)!;
      const res = await fetch(`${agent.url}/v1/guests`, {
        headers: { authorization: `Bearer ${stack.agentCredential(host)}` },
      }).catch(() => null);
      if (!res) continue; // the spare, stopped
      expect(res.status, host).toBe(200);
      held.set(host, ((await res.json()) as { guests: GuestState[] }).guests);
    }
    return held;
  }

  async function hostEventActions(host: string): Promise<string[]> {
    const res = await via(0).api<{ items: { action: string }[] }>('GET', `/v1/hosts/${host}/events`);
    return res.body.items.map((e) => e.action);
  }

  /** Every run of a workflow type on this stack's task queue whose id starts so, whatever its status. */
  async function closedOrOpenRuns(type: string, idPrefix: string): Promise<WorkflowExecutionInfo[]> {
    const runs = await listRuns(`WorkflowType = '${type}' AND TaskQueue = '${stack.taskQueue}'`);
    return runs.filter((r) => r.workflowId.startsWith(idPrefix));
  }

  async function listRuns(query: string): Promise<WorkflowExecutionInfo[]> {
    const runs: WorkflowExecutionInfo[] = [];
    for await (const run of stack.temporal.workflow.list({ query })) runs.push(run);
    return runs;
  }
});

interface SlotsPeak {
  samples: number;
  holders: number;
  outbound: number;
  inbound: number;
  queued: number;
  last: SlotsView | null;
}

interface SlotsSampler {
  stop(): Promise<SlotsPeak>;
}

/** The slots workflow's own view, sampled every 50 ms: the record of how many migrations held a slot at once. */
function sampleSlots(temporal: Client, slotsWorkflowId: string): SlotsSampler {
  const handle = temporal.workflow.getHandle(slotsWorkflowId);
  const peak: SlotsPeak = { samples: 0, holders: 0, outbound: 0, inbound: 0, queued: 0, last: null };
  let sampling = true;
  const maxPer = (list: string[]) => {
    const counts = new Map<string, number>();
    for (const key of list) counts.set(key, (counts.get(key) ?? 0) + 1);
    return Math.max(0, ...counts.values());
  };
  const loop = (async () => {
    while (sampling) {
      // A query answered by no worker (one was just stopped) must not stall the sampling for long.
      const view = await temporal
        .withDeadline(Date.now() + 2_000, () => handle.query(slotsQuery))
        .catch(() => null);
      if (view) {
        peak.samples++;
        peak.last = view;
        peak.holders = Math.max(peak.holders, view.holders.length);
        peak.outbound = Math.max(peak.outbound, maxPer(view.holders.map((h) => h.sourceHostId)));
        peak.inbound = Math.max(peak.inbound, maxPer(view.holders.map((h) => h.destinationHostId)));
        peak.queued = Math.max(peak.queued, view.queue.length);
      }
      await sleep(50);
    }
  })();
  return {
    async stop() {
      sampling = false;
      await loop;
      // One more look once everything ended: the final state.
      peak.last = await handle.query(slotsQuery);
      return peak;
    },
  };
}
