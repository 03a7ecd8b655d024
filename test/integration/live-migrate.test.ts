import { guestRunWorkflowId } from '../../domain/workflow-ids.ts';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { historyToJSON } from '@temporalio/common/lib/proto-utils.js';
import { eq } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { guests, hosts } from '../../db/schema.ts';
import { startMiniStack, type MiniStack } from '../helpers/mini-stack.ts';
import {
  agentGuest,
  createRunningServer,
  liveMigrate,
  migrationOf,
  reservationCount,
  waitForPhase,
  type ServerBody,
} from '../helpers/migrations.ts';
import { waitFor } from '../helpers/wait.ts';
import { apiAllPages } from '../../cli/api-client.ts';

describe('liveMigrate workflow on the real dev server with sim hosts', () => {
  let stack: MiniStack;

  beforeAll(async () => {
    stack = await startMiniStack({
      hosts: [
        { name: 'src' },
        { name: 'dst' },
        { name: 'dst-amd', sim: { cpuModel: 'AMD EPYC 7763 64-Core Processor' } },
        { name: 'dst-old', sim: { qemuVersion: '6.2.0' } },
        { name: 'dst-kernel', sim: { kernel: '6.12.0-1-amd64' } },
        { name: 'dst-small', memoryMb: 1024 },
        { name: 'dst-nonet', networks: ['storage-only'] },
        { name: 'dst-otherstore', sharedStorageDir: '/tmp/vmmig-other-shared-storage' },
        { name: 'dst-off', liveness: false },
        { name: 'dst-tight', memoryMb: 3072 },
      ],
    });
  });
  afterAll(async () => stack?.stop());

  it('moves a running guest, verifies it alive, commits, cleans the source; and back', async () => {
    const vm = await createRunningServer(stack, {
      name: 'happy',
      host: 'src',
      memoryMb: 2048,
      dirtyRateMibs: 1,
    });
    const started = await liveMigrate(stack, 'happy');
    expect(started.status).toBe(202);
    expect(started.body.destination?.name).toBe('dst');
    const done = await waitForPhase(stack, started.body.id, ['completed', 'failed']);
    expect(done.error).toBeNull();
    expect(done.phase).toBe('completed');
    expect(done.progress?.percent).toBe(100);
    expect(Object.keys(done.timings)).toEqual(
      expect.arrayContaining([
        'prechecks',
        'preparing',
        'copying',
        'verifying',
        'committing',
        'cleaning',
        'completed',
      ]),
    );
    expect(done.checks.every((c) => c.ok)).toBe(true);
    expect(done.events.map((e) => e.type)).toEqual(
      expect.arrayContaining(['destination_chosen', 'copy_started', 'switched_over', 'completed']),
    );

    const after = (await stack.api<ServerBody>('GET', '/v1/servers/happy')).body;
    expect(after).toMatchObject({ status: 'running', host: { name: 'dst' } });
    expect((await agentGuest(stack, 'src', vm.id)).status).toBe(404);
    expect((await agentGuest(stack, 'dst', vm.id)).body.status).toBe('running');
    expect(await reservationCount(stack)).toBe(0);

    const runs = await waitFor('the run to be searchable by GuestId', async () => {
      const found = [];
      for await (const run of stack.temporal.workflow.list({
        query: `GuestId = "${vm.id}" AND MigrationKind = "live"`,
      })) {
        found.push(run);
      }
      return found.length > 0 ? found : null;
    });
    const attributes = runs[0]?.typedSearchAttributes;
    expect(attributes?.getAll().map((p) => [p.key.name, p.value])).toEqual(
      expect.arrayContaining([
        ['GuestName', 'happy'],
        ['SourceHost', 'src'],
        ['DestinationHost', 'dst'],
        ['MigrationTrigger', 'manual'],
      ]),
    );
    // What the Temporal UI lists: an id with the guest's name, a summary line, a details line by names.
    expect(runs[0]?.workflowId).toBe(`live-migrate-happy-${vm.id}`);
    const handle = stack.temporal.workflow.getHandle(runs[0]!.workflowId);
    expect(await (await handle.describe()).staticSummary()).toBe('happy: src → any host, live, manual');
    const metadata = await handle.query<{ currentDetails?: string }>('__temporal_workflow_metadata');
    expect(metadata.currentDetails).toBe('completed → dst');

    if (process.env.RECORD_HISTORIES) {
      const history = await stack.temporal.workflow
        .getHandle(guestRunWorkflowId('live-migrate', vm))
        .fetchHistory();
      await writeFile(path.join('test', 'histories', process.env.RECORD_HISTORIES), historyToJSON(history));
    }

    const back = await liveMigrate(stack, 'happy', { prefer_host: 'src' });
    expect(back.status).toBe(202);
    expect((await waitForPhase(stack, back.body.id, ['completed', 'failed'])).phase).toBe('completed');
    expect((await stack.api<ServerBody>('GET', '/v1/servers/happy')).body.host.name).toBe('src');
  });

  describe('pre-checks: each failure is reported by name, nothing is left behind', () => {
    let vm: ServerBody;
    beforeAll(async () => {
      vm = await createRunningServer(stack, { name: 'checked', host: 'src', memoryMb: 2048 });
    });

    it.each([
      ['dst-amd', {}, 'cpu_compatible'],
      ['dst-old', {}, 'qemu_compatible'],
      ['dst-old', { skip_kernel_check: true }, 'qemu_compatible'],
      ['dst-kernel', {}, 'kernel_compatible'],
      ['dst-small', {}, 'destination_capacity'],
      ['dst-nonet', {}, 'destination_networks'],
      ['dst-otherstore', {}, 'destination_storage'],
      ['dst-off', {}, 'destination_host_usable'],
      ['src', {}, 'hosts_differ'],
    ])('prefer_host %s fails %s', async (host, extra, check) => {
      const res = await liveMigrate(stack, 'checked', { prefer_host: host, ...extra });
      expect(res.status, JSON.stringify(res.body)).toBe(422);
      expect(res.body.error?.code).toBe('precheck_failed');
      expect(res.body.error?.failures.map((f) => f.name)).toContain(check);
      expect(res.body.error?.message).toContain(check);
      const failed = await migrationOf(
        stack,
        (res.body.error as unknown as { migrationId: string }).migrationId,
      );
      expect(failed.phase).toBe('failed');
      expect(failed.error).toContain(check);
      expect(await reservationCount(stack)).toBe(0);
      expect((await stack.api<ServerBody>('GET', '/v1/servers/checked')).body).toMatchObject({
        status: 'running',
        host: { name: 'src' },
      });
    });

    it('a disabled destination fails destination_host_usable', async () => {
      await stack.db.db.update(hosts).set({ enabled: false }).where(eq(hosts.name, 'dst'));
      try {
        const res = await liveMigrate(stack, 'checked', { prefer_host: 'dst' });
        expect(res.status).toBe(422);
        expect(res.body.error?.message).toContain('disabled');
      } finally {
        await stack.db.db.update(hosts).set({ enabled: true }).where(eq(hosts.name, 'dst'));
      }
    });

    it('a guest that is not running fails guest_running', async () => {
      await stack.db.db.update(guests).set({ status: 'stopped' }).where(eq(guests.id, vm.id));
      try {
        const res = await liveMigrate(stack, 'checked');
        expect(res.status).toBe(422);
        expect(res.body.error?.failures.map((f) => f.name)).toEqual(['guest_running']);
      } finally {
        await stack.db.db.update(guests).set({ status: 'running' }).where(eq(guests.id, vm.id));
      }
    });

    it('passed-through devices and a cache mode other than none fail their checks', async () => {
      await createRunningServer(stack, { name: 'gpu', host: 'src', passthroughDevices: ['0000:3b:00.0'] });
      const gpu = await liveMigrate(stack, 'gpu');
      expect(gpu.body.error?.failures.map((f) => f.name)).toEqual(['no_passthrough_devices']);
      await createRunningServer(stack, {
        name: 'cached',
        host: 'src',
        disks: [{ id: 'disk0', sizeMb: 64, storage: 'shared', cache: 'writeback' }],
      });
      const cached = await liveMigrate(stack, 'cached');
      expect(cached.body.error?.failures.map((f) => f.name)).toEqual(['disk_cache_none']);
    });

    it('skip_cpu_check and skip_kernel_check let those hosts through', async () => {
      const cpu = await liveMigrate(stack, 'checked', { prefer_host: 'dst-amd', skip_cpu_check: true });
      expect(cpu.status, JSON.stringify(cpu.body)).toBe(202);
      expect((await waitForPhase(stack, cpu.body.id, ['completed', 'failed'])).phase).toBe('completed');
      const kernel = await liveMigrate(stack, 'checked', {
        prefer_host: 'dst-kernel',
        skip_kernel_check: true,
        // The guest is on dst-amd now: its CPU differs from dst-kernel's.
        skip_cpu_check: true,
      });
      expect(kernel.status, JSON.stringify(kernel.body)).toBe(202);
      expect((await waitForPhase(stack, kernel.body.id, ['completed', 'failed'])).phase).toBe('completed');
    });
  });

  it('rejects bad options with a 400 naming the field and an unknown server with a 404', async () => {
    const cases: [Record<string, unknown>, string][] = [
      [{ max_bandwidth_mb: -1 }, 'max_bandwidth_mb'],
      [{ max_bandwidth_mb: 'fast' }, 'max_bandwidth_mb'],
      [{ skip_cpu_check: 'yes' }, 'skip_cpu_check'],
      [{ prefer_host: 'no-such-host' }, 'prefer_host'],
      [{ turbo: true }, '(body)'],
    ];
    for (const [body, field] of cases) {
      const res = await liveMigrate(stack, 'happy', body);
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect(res.body.error?.field).toBe(field);
    }
    const unknown = await liveMigrate(stack, 'nope');
    expect(unknown.status).toBe(404);
    expect(unknown.body.error?.message).toBe("server 'nope' not found");
  });

  it('refuses a second migration of the same guest (409) and rolls back on cancel during the copy', async () => {
    const vm = await createRunningServer(stack, { name: 'slow', host: 'src', memoryMb: 8192 });
    const started = await liveMigrate(stack, 'slow', { max_bandwidth_mb: 50 });
    expect(started.status).toBe(202);
    const id = started.body.id;
    await waitFor(
      'bytes moving',
      async () => ((await migrationOf(stack, id)).progress?.transferredBytes ?? 0) > 0,
    );

    const second = await liveMigrate(stack, 'slow');
    expect(second.status).toBe(409);
    expect(second.body.error?.message).toContain(id);

    const cancel = await stack.api('POST', `/v1/migrations/${id}/cancel`);
    expect(cancel.status).toBe(202);
    const cancelled = await waitForPhase(stack, id, ['cancelled', 'failed', 'completed']);
    expect(cancelled.phase).toBe('cancelled');
    expect(cancelled.error).toBe('cancelled by operator');
    expect((await agentGuest(stack, 'src', vm.id)).body.status).toBe('running');
    expect((await agentGuest(stack, 'dst', vm.id)).status).toBe(404);
    expect(await reservationCount(stack)).toBe(0);
    expect((await stack.api<ServerBody>('GET', '/v1/servers/slow')).body).toMatchObject({
      status: 'running',
      host: { name: 'src' },
    });
    expect((await stack.api('POST', `/v1/migrations/${id}/cancel`)).status).toBe(409);
  });

  it('rolls back when the destination cannot be prepared, leaving nothing on either host', async () => {
    // Inventory drift: a guest started on dst-tight behind the inventory's back. The pre-checks (inventory)
    // pass; the destination agent's own admission control refuses the incoming guest.
    const tight = stack.agents.get('dst-tight');
    const rogue = {
      id: '11111111-2222-3333-4444-555555555555',
      name: 'rogue',
      vcpus: 1,
      memoryMb: 2048,
      disks: [],
      networks: [],
    };
    const headers = {
      authorization: `Bearer ${stack.agentCredential('dst-tight')}`,
      'content-type': 'application/json',
    };
    expect(
      (
        await fetch(`${tight?.url}/v1/guests/${rogue.id}`, {
          method: 'PUT',
          headers,
          body: JSON.stringify(rogue),
        })
      ).ok,
    ).toBe(true);
    expect((await fetch(`${tight?.url}/v1/guests/${rogue.id}/start`, { method: 'POST', headers })).ok).toBe(
      true,
    );

    const vm = await createRunningServer(stack, { name: 'squeezed', host: 'src', memoryMb: 2048 });
    const started = await liveMigrate(stack, 'squeezed', { prefer_host: 'dst-tight' });
    expect(started.status, JSON.stringify(started.body)).toBe(202);
    const failed = await waitForPhase(stack, started.body.id, ['failed', 'completed']);
    expect(failed.phase).toBe('failed');
    expect(failed.error).toMatch(/insufficient_memory|free/);
    expect(failed.events.map((e) => e.type)).not.toContain('rollback_incomplete');
    expect((await agentGuest(stack, 'src', vm.id)).body.status).toBe('running');
    expect((await agentGuest(stack, 'dst-tight', vm.id)).status).toBe(404);
    expect(await reservationCount(stack)).toBe(0);
    expect((await stack.api<ServerBody>('GET', '/v1/servers/squeezed')).body).toMatchObject({
      status: 'running',
      host: { name: 'src' },
    });
  });

  it('migrates a guest with a local disk by block migration', async () => {
    const vm = await createRunningServer(stack, {
      name: 'localdisk',
      host: 'src',
      disks: [{ id: 'disk0', sizeMb: 512, storage: 'local', cache: 'none' }],
    });
    const started = await liveMigrate(stack, 'localdisk', { prefer_host: 'dst' });
    expect(started.status).toBe(202);
    const done = await waitForPhase(stack, started.body.id, ['failed', 'completed']);
    expect(done.error).toBeNull();
    expect((await agentGuest(stack, 'dst', vm.id)).body.status).toBe('running');
  });

  it('does not start the QMP migration twice when the activity is retried after a crash', async () => {
    await stack.stopWorker();
    let crashed = false;
    await stack.startWorker((activities) => ({
      ...activities,
      async startSourceMigration(input) {
        const status = await activities.startSourceMigration(input);
        if (!crashed) {
          crashed = true;
          throw new Error('worker crashed right after the agent started the migration');
        }
        return status;
      },
    }));
    try {
      const vm = await createRunningServer(stack, { name: 'retried', host: 'src', memoryMb: 1024 });
      const started = await liveMigrate(stack, 'retried');
      const done = await waitForPhase(stack, started.body.id, ['completed', 'failed']);
      expect(done.phase).toBe('completed');
      expect(crashed).toBe(true);
      const starts = (stack.agentLogs.get('src') ?? []).filter((line) =>
        line.includes(`sim migration ${started.body.id} of ${vm.id} started`),
      );
      expect(starts).toHaveLength(1);
    } finally {
      await stack.stopWorker();
      await stack.startWorker();
    }
  });

  it('pages the migrations newest first with a cursor, in the same order as one big page', async () => {
    type Row = { id: string; requestedAt: string };
    type Page = { items: Row[]; next_cursor: string | null };
    const whole = (await stack.api<Page>('GET', '/v1/migrations?limit=1000')).body;
    expect(whole.next_cursor).toBeNull();
    expect(whole.items.length).toBeGreaterThan(5);
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const qs: string = `limit=3${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`;
      const page: Page = (await stack.api<Page>('GET', `/v1/migrations?${qs}`)).body;
      expect(page.items.length).toBeLessThanOrEqual(3);
      seen.push(...page.items.map((m) => m.id));
      cursor = page.next_cursor;
    } while (cursor !== null);
    expect(seen).toEqual(whole.items.map((m) => m.id));
    const conn = { baseUrl: stack.apiUrl, token: stack.apiToken };
    const newest = await apiAllPages<Row>(conn, '/v1/migrations', new URLSearchParams({ limit: '2' }), 5);
    expect(newest.map((m) => m.id)).toEqual(seen.slice(0, 5));
    const foreign = await stack.api<{ next_cursor: string }>('GET', '/v1/servers?limit=1');
    const misused = await stack.api<{ error: { field: string; message: string } }>(
      'GET',
      `/v1/migrations?cursor=${encodeURIComponent(foreign.body.next_cursor)}`,
    );
    expect(misused.status).toBe(400);
    expect(misused.body.error).toMatchObject({
      field: 'cursor',
      message: 'cursor: it pages servers, not migrations',
    });
  });
});
