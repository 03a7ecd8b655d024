import { afterAll, describe, expect, inject, it } from 'vitest';
import type { QemuDriver } from '../../agent/drivers/qemu.ts';
import type { GuestState, MigrationStatus, PrepareIncomingResult } from '../../domain/agent-contract.ts';
import { type AgentEndpoint, eventually, ok } from './agent-client.ts';
import { agentFactory } from './agents.ts';
import { testSpec } from './specs.ts';

const { makeAgent, cleanup } = await agentFactory('qemu', {
  guestImageDir: inject('guestImageDir'),
  stopGraceMs: 3000,
});
afterAll(cleanup);

async function runningWithHeartbeat(agent: AgentEndpoint, id: string, after = -1): Promise<GuestState> {
  return eventually(
    `guest ${id} running with a heartbeat past ${after}`,
    async () => {
      const guest = await ok<GuestState>(agent, 'GET', `/v1/guests/${id}`);
      return guest.status === 'running' && (guest.heartbeat?.counter ?? -1) > after ? guest : undefined;
    },
    30_000,
  );
}

describe('qemu driver across agent restarts', () => {
  it('reattaches to a live QEMU, restarts a dead one, and brings guests back after a clean stop', async () => {
    const spec = testSpec();
    let agent = await makeAgent('host-r');
    await ok(agent, 'PUT', `/v1/guests/${spec.id}`, spec);
    const first = await ok<GuestState>(agent, 'POST', `/v1/guests/${spec.id}/start`);
    const booted = await runningWithHeartbeat(agent, spec.id, 0);

    // An agent that goes away (upgrade, crash) leaves its QEMUs running; the next one reattaches.
    await agent.stop({ leaveGuests: true });
    agent = await makeAgent('host-r');
    const reattached = await runningWithHeartbeat(agent, spec.id, booted.heartbeat!.counter);
    expect(reattached.pid).toBe(first.pid);

    // A QEMU that died while no agent watched is started again, since the guest should run.
    await agent.stop({ leaveGuests: true });
    process.kill(first.pid!, 'SIGKILL');
    agent = await makeAgent('host-r');
    const restarted = await runningWithHeartbeat(agent, spec.id);
    expect(restarted.pid).not.toBe(first.pid);

    // A clean stop (SIGTERM) quits the guests but keeps their desired state for the next start.
    await agent.stop();
    agent = await makeAgent('host-r');
    const back = await runningWithHeartbeat(agent, spec.id);
    expect(back.pid).not.toBe(restarted.pid);

    // A stopped guest stays stopped across restarts.
    await ok(agent, 'POST', `/v1/guests/${spec.id}/stop`);
    await agent.stop();
    agent = await makeAgent('host-r');
    expect((await ok<GuestState>(agent, 'GET', `/v1/guests/${spec.id}`)).status).toBe('stopped');
    expect(await ok(agent, 'DELETE', `/v1/guests/${spec.id}`)).toEqual({ destroyed: true });
    await agent.stop();
  });

  it('carries a block migration on when the source agent restarts while the disks are mirrored', async () => {
    const MIB = 1024 * 1024;
    let source = await makeAgent('host-s');
    const destination = await makeAgent('host-d');
    const spec = testSpec({
      disks: [{ id: 'data', sizeMb: 16, storage: 'local', cache: 'none' }],
      dirtyRateMibs: 1,
      fillMb: 8,
    });
    await ok(source, 'PUT', `/v1/guests/${spec.id}`, spec);
    await ok(source, 'POST', `/v1/guests/${spec.id}/start`);
    await runningWithHeartbeat(source, spec.id, 0);
    await (source.driver as QemuDriver).humanMonitorCommand(
      spec.id,
      `qemu-io drive-data "write -P 0x5a ${4 * MIB} ${8 * MIB}"`,
    );
    const migrationId = 'm-restart';
    const incoming = await ok<PrepareIncomingResult>(
      destination,
      'POST',
      `/v1/guests/${spec.id}/prepare-incoming`,
      { migrationId, spec, listenAddress: '127.0.0.1' },
    );
    const started = await ok<MigrationStatus>(source, 'POST', `/v1/guests/${spec.id}/migration`, {
      migrationId,
      uri: incoming.uri,
      nbdUri: incoming.nbdUri,
      maxBandwidthBytes: 2 * MIB,
    });
    expect(started.status).toBe('setup');

    // The mirror goes on in QEMU while no agent watches; the next agent picks the steps up from there.
    await source.stop({ leaveGuests: true });
    await new Promise((resolve) => setTimeout(resolve, 1000));
    source = await makeAgent('host-s');
    await ok(source, 'POST', `/v1/guests/${spec.id}/migration/parameters`, { maxBandwidthBytes: 0 });
    const final = await eventually(
      'the migration to end',
      async () => {
        const status = await ok<MigrationStatus>(source, 'GET', `/v1/guests/${spec.id}/migration`);
        return ['completed', 'failed', 'cancelled'].includes(status.status) ? status : undefined;
      },
      60_000,
    );
    expect(final.status, final.errorDesc ?? '').toBe('completed');
    expect(final.startedAt).toBe(started.startedAt);
    await runningWithHeartbeat(destination, spec.id);
    await Promise.all([source.stop(), destination.stop()]);
  });
});
