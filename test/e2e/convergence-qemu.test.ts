import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startMiniStack, type MiniStack } from '../helpers/mini-stack.ts';
import {
  migrateToEnd,
  agentGuest,
  createRunningServer,
  liveMigrate,
  migrationOf,
  waitForPhase,
  type ServerBody,
} from '../helpers/migrations.ts';
import { waitFor } from '../helpers/wait.ts';

/** Faster than the 30 MiB/s cap: plain pre-copy never converges (QEMU-NOTES.md). */
const HOT = { memoryMb: 512, dirtyRateMibs: 80 };
const CAP = { max_bandwidth_mb: 30 };

async function heartbeatAdvancesOn(stack: MiniStack, host: string, guestId: string) {
  const first = (
    (await agentGuest(stack, host, guestId)).body as unknown as { heartbeat: { counter: number } | null }
  ).heartbeat?.counter;
  await waitFor(`heartbeat advancing on ${host}`, async () => {
    const now = (await agentGuest(stack, host, guestId)).body as unknown as {
      status: string;
      heartbeat: { counter: number } | null;
    };
    return now.status === 'running' && (now.heartbeat?.counter ?? 0) > (first ?? 0) + 1;
  });
}

describe('a migration that never converges under plain pre-copy (real QEMU, 30 MiB/s cap)', () => {
  let stack: MiniStack;

  beforeAll(async () => {
    stack = await startMiniStack({
      hosts: [
        { name: 'q1', driver: 'qemu' },
        { name: 'q2', driver: 'qemu' },
      ],
    });
    const policies = [
      {
        name: 'e2e-minimal',
        selectors: { guestLabels: { conv: 'minimal' } },
        convergence: 'minimal-downtime',
        // Throttling could rescue the guest; this test is about the schedule giving up.
        overrides: { allowAutoConverge: false },
      },
      { name: 'e2e-postcopy', selectors: { guestLabels: { conv: 'postcopy' } }, convergence: 'post-copy' },
      {
        name: 'e2e-patient',
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

  it('(a) under minimal downtime aborts with the recorded reason; the guest stays on the source, nothing on the destination', async () => {
    const vm = await createRunningServer(stack, {
      name: 'hot-a',
      host: 'q1',
      ...HOT,
      labels: { conv: 'minimal' },
    });
    const done = await migrateToEnd(stack, 'hot-a', { prefer_host: 'q2', ...CAP }, 180_000);
    expect(done.phase).toBe('failed');
    expect(done.error).toMatch(/^convergence policy gave up: /);
    const abort = done.events.find((e) => e.type === 'convergence_abort');
    expect(abort?.message).toBeTruthy();
    expect(done.error).toContain(abort?.message ?? '---');
    expect(done.events.filter((e) => e.type === 'convergence_set_downtime').length).toBeGreaterThan(0);
    expect((await agentGuest(stack, 'q1', vm.id)).body.status).toBe('running');
    expect((await agentGuest(stack, 'q2', vm.id)).status).toBe(404);
    await heartbeatAdvancesOn(stack, 'q1', vm.id);
    expect((await stack.api<ServerBody>('GET', '/v1/servers/hot-a')).body.host.name).toBe('q1');
  });

  it('(b) under a post-copy policy completes and the guest runs on the destination', async () => {
    const vm = await createRunningServer(stack, {
      name: 'hot-b',
      host: 'q1',
      ...HOT,
      labels: { conv: 'postcopy' },
    });
    const done = await migrateToEnd(stack, 'hot-b', { prefer_host: 'q2', ...CAP }, 180_000);
    expect(done.error).toBeNull();
    expect(done.phase).toBe('completed');
    expect(done.events.map((e) => e.type)).toContain('convergence_start_post_copy');
    await heartbeatAdvancesOn(stack, 'q2', vm.id);
    expect((await stack.api<ServerBody>('GET', '/v1/servers/hot-b')).body.host.name).toBe('q2');
  });

  it('(c) force-complete finishes it: the guest is paused for the final copy and resumes on the destination', async () => {
    const vm = await createRunningServer(stack, {
      name: 'hot-c',
      host: 'q1',
      ...HOT,
      labels: { conv: 'patient' },
    });
    const started = await liveMigrate(stack, 'hot-c', { prefer_host: 'q2', ...CAP });
    expect(started.status, JSON.stringify(started.body)).toBe(202);
    const id = started.body.id;
    await waitFor(
      'a few memory passes',
      async () => {
        const m = await migrationOf(stack, id);
        return m.phase === 'copying' && ((m.progress as { passes?: number } | null)?.passes ?? 0) >= 3;
      },
      { timeoutMs: 90_000 },
    );
    const forced = await stack.api<{ events: { type: string; data: { action?: string } }[] }>(
      'POST',
      `/v1/migrations/${id}/force-complete`,
    );
    expect(forced.status).toBe(202);
    expect(forced.body.events.find((e) => e.type === 'force_complete_requested')?.data.action).toBe(
      'pause-guest',
    );
    const done = await waitForPhase(stack, id, ['completed', 'failed', 'cancelled'], 120_000);
    expect(done.error).toBeNull();
    expect(done.phase).toBe('completed');
    expect(done.events.map((e) => e.type)).toEqual(expect.arrayContaining(['force_complete', 'resumed']));
    await heartbeatAdvancesOn(stack, 'q2', vm.id);
    expect((await stack.api('POST', `/v1/migrations/${id}/force-complete`)).status).toBe(409);
  });
});
