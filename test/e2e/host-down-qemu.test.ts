import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { processAlive, processCommandLine } from '../../agent/proc-stat.ts';
import { startMiniStack, type MiniStack } from '../helpers/mini-stack.ts';
import {
  agentGuest,
  createRunningServer,
  type MigrationBody,
  type ServerBody,
} from '../helpers/migrations.ts';
import { qemuPidsOf } from '../helpers/qemu-pids.ts';
import { waitFor } from '../helpers/wait.ts';

/** What the test reads of GET /v1/hosts/:id/events (newest first). */
type HostEvent = { action: string; data: Record<string, unknown>; at: string };

const VICTIM = 'qd1';
const SURVIVOR = 'qd2';

async function serialLog(stack: MiniStack, host: string, guestId: string): Promise<string> {
  return readFile(path.join(stack.dir, 'agents', host, 'guests', guestId, 'serial.log'), 'latin1').catch(
    () => '',
  );
}

const seconds = (ms: number) => `${(ms / 1000).toFixed(2)} s`;

/**
 * A QEMU host dies (its agent stops renewing its lease without revoking it, and its QEMU processes are
 * SIGKILLed): the host watch notices the expired lease, hostDown confirms the loss and the shared-storage
 * guest boots again on the other host from the same disk file.
 */
describe('host down on real QEMU: the shared-storage guest runs again elsewhere', () => {
  let stack: MiniStack;

  beforeAll(async () => {
    stack = await startMiniStack({
      hosts: [
        // A short lease on the host that dies keeps the test fast; the survivor keeps the default 5 s.
        { name: VICTIM, driver: 'qemu', ttlSeconds: 3 },
        { name: SURVIVOR, driver: 'qemu' },
      ],
      hostWatch: { fencingMarginMs: 1_000 },
    });
  });
  afterAll(async () => stack?.stop());

  const hostEvents = async (host: string) =>
    (await stack.api<{ items: HostEvent[] }>('GET', `/v1/hosts/${host}/events`)).body.items;
  const eventAt = async (host: string, action: string, timeoutMs: number) => {
    const event = await waitFor(
      `${action} on ${host}`,
      async () => (await hostEvents(host)).find((e) => e.action === action) ?? null,
      { timeoutMs, intervalMs: 100 },
    );
    return new Date(event.at).getTime();
  };

  it('kill a host (SIGKILL its agent and its QEMU processes): its shared-storage guest runs again on another host with an advancing heartbeat and its disk check passing', async () => {
    expect(
      (
        await stack.api('POST', `/v1/hosts/${VICTIM}/auto-migrate-on-host-down`, {
          auto_migrate_on_host_down: 'enable',
        })
      ).status,
    ).toBe(200);
    // createRunningServer's default disk is a shared one (disk0, 64 MiB): the guest's disk test uses it.
    const vm = await createRunningServer(stack, {
      name: 'hdq',
      host: VICTIM,
      memoryMb: 256,
      diskTest: true,
    });
    const sharedDisk = path.join(stack.dir, 'shared', vm.id, 'disk0.qcow2');

    // The guest's own disk check works on the victim before it dies (or the image cannot run it).
    const victimLog = await waitFor(
      'the disk check on the victim',
      async () => {
        const log = await serialLog(stack, VICTIM, vm.id);
        return /^DISK (READ .* ok|UNAVAILABLE)/m.test(log) ? log : null;
      },
      { timeoutMs: 60_000 },
    );
    const diskTestRuns = !/^DISK UNAVAILABLE/m.test(victimLog);
    if (!diskTestRuns)
      console.warn(`guest disk test did not run: ${/DISK UNAVAILABLE.*/.exec(victimLog)?.[0] ?? ''}`);

    const victimDir = path.join(stack.dir, 'agents', VICTIM);
    const victimGuest = (await agentGuest(stack, VICTIM, vm.id)).body as unknown as { pid: number | null };
    const pids = await qemuPidsOf(victimDir);
    expect(pids).toContain(victimGuest.pid);
    expect((await processCommandLine(victimGuest.pid!)).some((a) => a.includes(sharedDisk))).toBe(true);
    const survivorPids = await qemuPidsOf(path.join(stack.dir, 'agents', SURVIVOR));
    expect(survivorPids.filter((pid) => pids.includes(pid))).toEqual([]);

    // The host dies: no more keepalives (the lease is left to expire), then its QEMU processes go.
    const killedAt = Date.now();
    await stack.agents.get(VICTIM)!.stop({ leaveGuests: true });
    for (const pid of pids) process.kill(pid, 'SIGKILL');
    await waitFor('the victim QEMU processes gone', async () => {
      for (const pid of pids) if (await processAlive(pid)) return false;
      return true;
    });
    expect(await qemuPidsOf(victimDir)).toEqual([]);

    const leaseLostAt = await eventAt(VICTIM, 'host_lease_lost', 60_000);
    const rescueStartAt = await eventAt(VICTIM, 'host_down_auto_migrate_start', 60_000);

    // Running on the other host, the heartbeat advancing between two reads there.
    const first = await waitFor(
      'hdq running on the survivor with a heartbeat',
      async () => {
        const s = (await stack.api<ServerBody>('GET', '/v1/servers/hdq')).body;
        const counter = s.live?.heartbeat?.counter;
        return s.status === 'running' && s.host.name === SURVIVOR && counter !== undefined
          ? { counter }
          : null;
      },
      { timeoutMs: 120_000, intervalMs: 100 },
    );
    const advancedAt = await waitFor(
      'the heartbeat advancing on the survivor',
      async () => {
        const s = (await stack.api<ServerBody>('GET', '/v1/servers/hdq')).body;
        return s.host.name === SURVIVOR && (s.live?.heartbeat?.counter ?? -1) > first.counter
          ? Date.now()
          : null;
      },
      { timeoutMs: 30_000, intervalMs: 100 },
    );

    console.log(
      [
        `host down on QEMU (lease TTL 3 s, fencing margin 1 s): kill -> guest running elsewhere ${seconds(advancedAt - killedAt)}`,
        `  detection        kill -> host_lease_lost                  ${seconds(leaseLostAt - killedAt)}`,
        `  fencing+confirm  host_lease_lost -> rescue start          ${seconds(rescueStartAt - leaseLostAt)}`,
        `  restart          rescue start -> heartbeat advancing      ${seconds(advancedAt - rescueStartAt)}`,
      ].join('\n'),
    );

    // The agent of the survivor runs it, from the same shared disk file.
    const moved = (await agentGuest(stack, SURVIVOR, vm.id)).body as unknown as {
      status: string;
      pid: number | null;
    };
    expect(moved.status).toBe('running');
    expect((await processCommandLine(moved.pid!)).some((a) => a.includes(sharedDisk))).toBe(true);

    // Its disk check passes there (the guest booted again: a fresh generation, written and read back).
    const survivorLog = () => serialLog(stack, SURVIVOR, vm.id);
    if (diskTestRuns) {
      await waitFor(
        'a DISK READ ok on the survivor',
        async () => /^DISK READ .* ok/m.test(await survivorLog()),
        {
          timeoutMs: 60_000,
        },
      );
    }
    expect(await survivorLog()).toMatch(/^HB \d+/m);
    expect(await survivorLog()).not.toMatch(/DISK (CORRUPT|ERROR)|DIRTIER CORRUPT|Kernel panic/);
    expect(victimLog).not.toMatch(/DISK (CORRUPT|ERROR)|DIRTIER CORRUPT|Kernel panic/);

    // The host's events tell the story, in order (the API lists the newest first); the rescue is a migration
    // row of its own.
    await waitFor('the rescue recorded on the host', async () =>
      (await hostEvents(VICTIM)).some((e) => e.action === 'host_down_auto_migrate_success'),
    );
    const events = await hostEvents(VICTIM);
    const story = events
      .map((e) => e.action)
      .filter((action) => action === 'host_lease_lost' || action.startsWith('host_down'))
      .reverse();
    expect(story).toEqual([
      'host_lease_lost',
      'host_down',
      'host_down_auto_migrate',
      'host_down_auto_migrate_start',
      'host_down_auto_migrate_success',
    ]);
    const decision = events.find((e) => e.action === 'host_down_auto_migrate')!.data as {
      moving: { name: string }[];
    };
    expect(decision.moving.map((m) => m.name)).toEqual(['hdq']);
    const rescue = await waitFor('the rescue migration completed', async () => {
      const { items: migrations } = (
        await stack.api<{ items: MigrationBody[] }>('GET', '/v1/migrations?guest=hdq')
      ).body;
      return migrations[0]?.phase === 'completed' ? migrations : null;
    });
    expect(rescue).toHaveLength(1);
    expect(rescue[0]).toMatchObject({
      kind: 'rescue',
      trigger: 'host-down',
      phase: 'completed',
      error: null,
      source: { name: VICTIM },
      destination: { name: SURVIVOR },
    });

    // Nothing of the guest came back on the dead host meanwhile.
    await sleep(500);
    expect(await qemuPidsOf(victimDir)).toEqual([]);
  }, 240_000);
});
