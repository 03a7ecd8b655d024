import type { ChildProcess } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startMiniStack, type MiniStack } from '../helpers/mini-stack.ts';
import { createRunningServer, liveMigrate, migrationOf, waitForPhase } from '../helpers/migrations.ts';
import { waitFor } from '../helpers/wait.ts';
import { startWorkerProcess } from '../helpers/worker-process.ts';

describe('a worker killed mid-migration', () => {
  let stack: MiniStack;
  const workers: ChildProcess[] = [];

  beforeAll(async () => {
    stack = await startMiniStack({ hosts: [{ name: 'src' }, { name: 'dst' }], worker: false });
  });
  afterAll(async () => {
    for (const w of workers) w.kill('SIGKILL');
    await stack?.stop();
  });

  it('is replaced by a new worker that finishes the migration without restarting the copy', async () => {
    workers.push(await startWorkerProcess(stack));
    const vm = await createRunningServer(stack, { name: 'crashy', host: 'src', memoryMb: 4096 });
    const started = await liveMigrate(stack, 'crashy', { max_bandwidth_mb: 256 });
    expect(started.status).toBe(202);
    const id = started.body.id;
    await waitFor(
      'bytes moving',
      async () => ((await migrationOf(stack, id)).progress?.transferredBytes ?? 0) > 0,
    );

    workers[0]?.kill('SIGKILL');
    const killedAt = await migrationOf(stack, id);
    expect(killedAt.phase).toBe('copying');

    workers.push(await startWorkerProcess(stack));
    const done = await waitForPhase(stack, id, ['completed', 'failed', 'cancelled'], 120_000);
    expect(done.error).toBeNull();
    expect(done.phase).toBe('completed');
    expect((await stack.api<{ host: { name: string } }>('GET', '/v1/servers/crashy')).body.host.name).toBe(
      'dst',
    );
    const starts = (stack.agentLogs.get('src') ?? []).filter((line) =>
      line.includes(`sim migration ${id} of ${vm.id} started`),
    );
    expect(starts).toHaveLength(1);
  });
});
