import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { historyToJSON } from '@temporalio/common/lib/proto-utils.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { guestRunWorkflowId } from '../../domain/workflow-ids.ts';
import { startMiniStack, type MiniStack } from '../helpers/mini-stack.ts';
import { agentGuest, createRunningServer, liveMigrate, type ServerBody } from '../helpers/migrations.ts';
import { waitFor } from '../helpers/wait.ts';

describe('server-stop and server-start through the API, on sim hosts', () => {
  let stack: MiniStack;

  beforeAll(async () => {
    stack = await startMiniStack({ hosts: [{ name: 'p1' }, { name: 'p2' }] });
  });
  afterAll(async () => stack?.stop());

  const status = async (name: string) =>
    (await stack.api<ServerBody>('GET', `/v1/servers/${name}`)).body.status;

  it('stops a running server (ready, stopped on its agent) and starts it again', async () => {
    const vm = await createRunningServer(stack, { name: 'pw', host: 'p1', memoryMb: 512 });
    const stopped = await stack.api('POST', '/v1/servers/pw/stop');
    expect(stopped.status).toBe(202);
    expect(stopped.body).toMatchObject({ id: vm.id, name: 'pw' });
    await waitFor('pw ready', async () => ((await status('pw')) === 'ready' ? true : null));
    expect((await agentGuest(stack, 'p1', vm.id)).body.status).toBe('stopped');

    // A stopped guest cannot live-migrate: the pre-check says so.
    const refused = await liveMigrate(stack, 'pw');
    expect(refused.status).toBe(422);
    expect(refused.body.error?.failures.map((f) => f.name)).toContain('guest_running');

    // Already stopped: a 200 with the server, and no workflow started.
    const again = await stack.api('POST', '/v1/servers/pw/stop');
    expect(again.status).toBe(200);
    expect(again.body).toMatchObject({ id: vm.id, status: 'ready' });
    expect((await stack.api('POST', '/v1/servers/pw/start')).status).toBe(202);
    await waitFor('pw running', async () => ((await status('pw')) === 'running' ? true : null));
    expect((await agentGuest(stack, 'p1', vm.id)).body.status).toBe('running');
    if (process.env.RECORD_HISTORIES) {
      const history = await stack.temporal.workflow
        .getHandle(guestRunWorkflowId('guest-power', vm))
        .fetchHistory();
      await writeFile(path.join('test', 'histories', 'guest-power-start.json'), historyToJSON(history));
    }
  });

  it('refuses a stop while the server migrates, naming the migration', async () => {
    await createRunningServer(stack, { name: 'busy', host: 'p1', memoryMb: 1024, dirtyRateMibs: 10 });
    await stack.api('PUT', '/v1/migration-config', { bandwidthPerMigration: '64Mi' });
    const started = await liveMigrate(stack, 'busy', { prefer_host: 'p2' });
    expect(started.status).toBe(202);
    const refused = await stack.api<{ error: { code: string; message: string } }>(
      'POST',
      '/v1/servers/busy/stop',
    );
    expect(refused.status).toBe(409);
    expect(refused.body.error.code).toBe('migration_in_progress');
    expect(refused.body.error.message).toContain(started.body.id);
    await stack.api('PUT', '/v1/migration-config', {});
  });

  it('answers an unknown server with a 404 naming it', async () => {
    const missing = await stack.api<{ error: { message: string } }>('POST', '/v1/servers/nope/start');
    expect(missing.status).toBe(404);
    expect(missing.body.error.message).toContain("'nope'");
  });
});
