import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { ApplicationFailure, Context } from '@temporalio/activity';
import { historyToJSON } from '@temporalio/common/lib/proto-utils.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { guestRunWorkflowId, liveMigrationGroupWorkflowId } from '../../domain/workflow-ids.ts';
import { startMiniStack, type MiniStack } from '../helpers/mini-stack.ts';
import {
  createRunningServer,
  liveMigrate,
  migrationOf,
  waitForPhase,
  type MigrationBody,
} from '../helpers/migrations.ts';
import { waitFor } from '../helpers/wait.ts';

/**
 * Records one history per path of the live migration into test/histories/, which replay.test.ts replays
 * against the current workflow code. Run it after a deliberate change of the workflow's shape:
 *   RECORD_HISTORIES=1 npx vitest run test/integration/record-histories.test.ts
 */
describe.runIf(process.env.RECORD_HISTORIES)('record a history of every live-migration path', () => {
  let stack: MiniStack;
  const HOT = { memoryMb: 1024, dirtyRateMibs: 80 };
  const CAP = { max_bandwidth_mb: 30 };

  beforeAll(async () => {
    stack = await startMiniStack({ hosts: [{ name: 'src' }, { name: 'dst' }] });
    const policies = [
      { name: 'rec-postcopy', selectors: { guestLabels: { conv: 'postcopy' } }, convergence: 'post-copy' },
      {
        name: 'rec-abort',
        selectors: { guestLabels: { conv: 'abort' } },
        convergence: 'schedule',
        schedule: [{ afterPass: 2, action: 'abort' }],
      },
      {
        name: 'rec-patient',
        selectors: { guestLabels: { conv: 'patient' } },
        convergence: 'schedule',
        schedule: [{ afterPass: 0, action: 'set-downtime', downtimeMs: 300 }],
      },
    ];
    for (const p of policies) {
      const res = await stack.api('POST', '/v1/migration-policies', p);
      if (res.status !== 201) throw new Error(`policy ${p.name}: ${JSON.stringify(res.body)}`);
    }
  });
  afterAll(async () => stack?.stop());

  const save = async (file: string, workflowId: string) => {
    const history = await stack.temporal.workflow.getHandle(workflowId).fetchHistory();
    await writeFile(path.join('test', 'histories', file), historyToJSON(history));
  };
  const toEnd = (id: string) => waitForPhase(stack, id, ['completed', 'failed', 'cancelled'], 180_000);
  const migrate = async (server: string, options: Record<string, unknown>) => {
    const started = await liveMigrate(stack, server, options);
    if (started.status !== 202) throw new Error(`${server}: ${JSON.stringify(started.body)}`);
    return started.body.id;
  };
  const record = async (
    name: string,
    server: Record<string, unknown>,
    options: Record<string, unknown>,
    during?: (id: string) => Promise<void>,
  ): Promise<MigrationBody> => {
    const vm = await createRunningServer(stack, { host: 'src', name, ...server });
    const id = await migrate(name, { prefer_host: 'dst', ...options });
    await during?.(id);
    const done = await toEnd(id);
    await save(`live-migrate-${name}.json`, guestRunWorkflowId('live-migrate', vm));
    return done;
  };

  it('completed', async () => {
    expect((await record('completed', { memoryMb: 1024, dirtyRateMibs: 1 }, {})).phase).toBe('completed');
  });

  it('cancelled during the copy', async () => {
    const done = await record('cancelled', { memoryMb: 8192 }, { max_bandwidth_mb: 50 }, async (id) => {
      await waitFor(
        'bytes moving',
        async () => ((await migrationOf(stack, id)).progress?.transferredBytes ?? 0) > 0,
      );
      await stack.api('POST', `/v1/migrations/${id}/cancel`);
    });
    expect(done.phase).toBe('cancelled');
  });

  it('aborted by its policy', async () => {
    const done = await record('aborted', { ...HOT, labels: { conv: 'abort' } }, CAP);
    expect(done.phase).toBe('failed');
    expect(done.error).toMatch(/^convergence policy gave up/);
  });

  it('post-copy', async () => {
    const done = await record('post-copy', { ...HOT, labels: { conv: 'postcopy' } }, CAP);
    expect(done.phase).toBe('completed');
  });

  it('force-completed', async () => {
    const done = await record('force-completed', { ...HOT, labels: { conv: 'patient' } }, CAP, async (id) => {
      await waitFor('two passes', async () => ((await migrationOf(stack, id)).progress?.passes ?? 0) >= 2, {
        timeoutMs: 60_000,
      });
      await stack.api('POST', `/v1/migrations/${id}/force-complete`);
    });
    expect(done.phase).toBe('completed');
  });

  it('rolled back after a failed preparation, and rolled forward after a late failure', async () => {
    await stack.stopWorker();
    await stack.startWorker((activities) => ({
      ...activities,
      async prepareDestination(input) {
        if (input.spec.name === 'rolled-back') throw ApplicationFailure.nonRetryable('injected', 'Injected');
        return activities.prepareDestination(input);
      },
      async monitorMigration(input) {
        const result = await activities.monitorMigration(input);
        if (input.migrationId !== forwardId || Context.current().info.attempt > 1) return result;
        throw ApplicationFailure.nonRetryable('failure reported as QEMU completed', 'Injected');
      },
    }));
    let forwardId = '';
    try {
      expect((await record('rolled-back', { memoryMb: 1024 }, {})).phase).toBe('failed');
      const vm = await createRunningServer(stack, { host: 'src', name: 'rolled-forward', memoryMb: 1024 });
      forwardId = await migrate('rolled-forward', { prefer_host: 'dst' });
      expect((await toEnd(forwardId)).phase).toBe('completed');
      await save('live-migrate-rolled-forward.json', guestRunWorkflowId('live-migrate', vm));
    } finally {
      await stack.stopWorker();
      await stack.startWorker();
    }
  });

  it('queued behind the per-cluster limit, and a group of guests', async () => {
    expect((await stack.api('PUT', '/v1/migration-config', { parallelMigrationsPerCluster: 1 })).status).toBe(
      200,
    );
    try {
      const first = await createRunningServer(stack, { host: 'src', name: 'first', memoryMb: 8192 });
      const firstId = await migrate('first', { prefer_host: 'dst', max_bandwidth_mb: 200 });
      const done = await record('queued', { memoryMb: 1024 }, {}, async (id) => {
        await waitFor('queued', async () => (await migrationOf(stack, id)).phase === 'queued');
      });
      expect(done.phase).toBe('completed');
      await toEnd(firstId);
      await save('live-migrate-first.json', guestRunWorkflowId('live-migrate', first));
    } finally {
      await stack.api('PUT', '/v1/migration-config', {});
    }
    await createRunningServer(stack, {
      host: 'src',
      name: 'g-1',
      memoryMb: 1024,
      labels: { 'affinity.app': 'g' },
    });
    await createRunningServer(stack, {
      host: 'src',
      name: 'g-2',
      memoryMb: 1024,
      labels: { 'affinity.app': 'g' },
    });
    const group = await stack.api<{ groupId: string }>('POST', '/v1/servers/g-1/live-migrate', {
      with_same_labels: true,
      prefer_host: 'dst',
    });
    expect(group.status).toBe(202);
    const outcome = await waitFor(
      'the group to end',
      async () => {
        const res = await stack.api<{ done: boolean; migrations: { phase: string }[] }>(
          'GET',
          `/v1/migrations/groups/${group.body.groupId}`,
        );
        return res.body.done ? res.body.migrations : null;
      },
      { timeoutMs: 120_000 },
    );
    expect(outcome.map((m) => m.phase)).toEqual(['completed', 'completed']);
    const handle = stack.temporal.workflow.getHandle(liveMigrationGroupWorkflowId(group.body.groupId));
    await handle.result();
    await save('live-migrate-group.json', liveMigrationGroupWorkflowId(group.body.groupId));
  });
});
