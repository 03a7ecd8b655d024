import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { recordLatestHistory } from '../helpers/histories.ts';
import { startMiniStack, type MiniStack } from '../helpers/mini-stack.ts';
import { agentGuest, createRunningServer, waitForPhase, type ServerBody } from '../helpers/migrations.ts';
import { waitFor } from '../helpers/wait.ts';

interface MigrateAnswer {
  id: string;
  kind: string;
  destination: { name: string } | null;
  error?: { code: string; message: string; field?: string; failures?: { name: string; message: string }[] };
}

/** Cloudpods' server-migrate (seed 001): a stopped guest moves cold; rescue mode restarts one of a dead host. */
describe('cold and rescue migration through the API, on sim hosts', () => {
  let stack: MiniStack;

  beforeAll(async () => {
    stack = await startMiniStack({ hosts: [{ name: 'c1' }, { name: 'c2' }, { name: 'c3' }] });
  });
  afterAll(async () => stack?.stop());

  const server = async (name: string) => (await stack.api<ServerBody>('GET', `/v1/servers/${name}`)).body;
  const migrate = (name: string, body: Record<string, unknown> = {}) =>
    stack.api<MigrateAnswer>('POST', `/v1/servers/${name}/migrate`, body);
  const stopServer = async (name: string) => {
    expect((await stack.api('POST', `/v1/servers/${name}/stop`)).status).toBe(202);
    await waitFor(`${name} ready`, async () => ((await server(name)).status === 'ready' ? true : null));
  };

  it('moves a stopped guest to another host: ready there, gone from its source', async () => {
    const vm = await createRunningServer(stack, { name: 'cold1', host: 'c1', memoryMb: 512 });
    await stopServer('cold1');
    const started = await migrate('cold1', { prefer_host: 'c2' });
    expect(started.status, JSON.stringify(started.body)).toBe(202);
    expect(started.body).toMatchObject({ kind: 'cold', destination: { name: 'c2' } });
    const done = await waitForPhase(stack, started.body.id, ['completed', 'failed']);
    expect(done.phase, done.error ?? '').toBe('completed');
    const after = await server('cold1');
    expect(after).toMatchObject({ status: 'ready', host: { name: 'c2' } });
    expect(['defined', 'stopped']).toContain((await agentGuest(stack, 'c2', vm.id)).body.status);
    expect((await agentGuest(stack, 'c1', vm.id)).status).toBe(404);
    await recordLatestHistory(stack, 'coldMigrate', 'cold-migrate-completed.json');
  });

  it('starts the guest on arrival with auto_start', async () => {
    const vm = await createRunningServer(stack, { name: 'cold2', host: 'c1', memoryMb: 512 });
    await stopServer('cold2');
    const started = await migrate('cold2', { auto_start: true });
    expect(started.status, JSON.stringify(started.body)).toBe(202);
    const done = await waitForPhase(stack, started.body.id, ['completed', 'failed']);
    expect(done.phase, done.error ?? '').toBe('completed');
    const after = await server('cold2');
    expect(after.status).toBe('running');
    expect(after.host.name).not.toBe('c1');
    expect((await agentGuest(stack, after.host.name, vm.id)).body.status).toBe('running');
  });

  it('refuses a running guest (live-migrate it instead), naming the check', async () => {
    await createRunningServer(stack, { name: 'warm', host: 'c1', memoryMb: 256 });
    const running = await migrate('warm');
    expect(running.status).toBe(422);
    expect(running.body.error?.failures?.map((f) => f.name)).toContain('guest_stopped');

    await createRunningServer(stack, {
      name: 'localdisk',
      host: 'c1',
      memoryMb: 256,
      disks: [{ id: 'root', sizeMb: 64, storage: 'local', cache: 'none' }],
    });
    await stopServer('localdisk');
  });

  it('refuses bad input with a 400 naming the field', async () => {
    const bad = await migrate('warm', { auto_start: 'yes' });
    expect(bad.status).toBe(400);
    expect(bad.body.error?.message).toContain('auto_start');
    const unknownHost = await migrate('warm', { prefer_host: 'nowhere' });
    expect(unknownHost.status).toBe(400);
    expect(unknownHost.body.error?.field).toBe('prefer_host');
    expect((await migrate('nobody')).status).toBe(404);
  });

  it('refuses a rescue while the source is up, and one with a local disk, with a 400 saying why', async () => {
    const up = await migrate('warm', { rescue_mode: true });
    expect(up.status).toBe(400);
    expect(up.body.error?.field).toBe('rescue_mode');
    expect(up.body.error?.message).toContain('holds its etcd lease');
    const local = await migrate('localdisk', { rescue_mode: true });
    expect(local.status).toBe(400);
    expect(local.body.error?.message).toContain('disk root');
    expect(local.body.error?.message).toContain('shared storage');
  });

  it('rescues a guest of a dead host onto another and starts it (auto_start)', async () => {
    const vm = await createRunningServer(stack, { name: 'stranded', host: 'c3', memoryMb: 512 });
    // The host dies: its agent stops renewing the lease and its (in-memory) guests are gone.
    await stack.agents.get('c3')!.stop({ leaveGuests: true });
    await waitFor(
      'c3 lease expired',
      async () => {
        const host = (await stack.api<{ status: string }>('GET', '/v1/hosts/c3')).body;
        return host.status === 'offline' ? true : null;
      },
      { timeoutMs: 20_000 },
    );
    const started = await migrate('stranded', { rescue_mode: true, auto_start: true });
    expect(started.status, JSON.stringify(started.body)).toBe(202);
    expect(started.body.kind).toBe('rescue');
    const done = await waitForPhase(stack, started.body.id, ['completed', 'failed']);
    expect(done.phase, done.error ?? '').toBe('completed');
    const after = await server('stranded');
    expect(after.status).toBe('running');
    expect(['c1', 'c2']).toContain(after.host.name);
    expect((await agentGuest(stack, after.host.name, vm.id)).body.status).toBe('running');
  });

  it("copies a stopped guest's local disk to its new host, with progress, and removes it from the source", async () => {
    const vm = await server('localdisk');
    const started = await migrate('localdisk', { prefer_host: 'c2' });
    expect(started.status, JSON.stringify(started.body)).toBe(202);
    const done = await waitForPhase(stack, started.body.id, ['completed', 'failed']);
    expect(done.phase, done.error ?? '').toBe('completed');
    expect(done.timings.copying).toBeDefined();
    expect(done.events.map((e) => e.type)).toContain('disk_copied');
    expect(await server('localdisk')).toMatchObject({ status: 'ready', host: { name: 'c2' } });
    expect((await agentGuest(stack, 'c1', vm.id)).status).toBe(404);
  });
});
