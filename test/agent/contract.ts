import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type {
  AgentError,
  GuestSpec,
  GuestState,
  HostFacts,
  MigrationStatus,
  PrepareIncomingResult,
} from '../../domain/agent-contract.ts';
import { type AgentEndpoint, call, eventually, ok } from './agent-client.ts';
import { testSpec } from './specs.ts';

export interface ContractAgent extends AgentEndpoint {
  hostId: string;
  /** The agent's own directory. */
  dir: string;
  stop(options?: { leaveGuests?: boolean }): Promise<void>;
}

export interface ContractTuning {
  driver: 'qemu' | 'sim';
  /** Boot plus two heartbeats. */
  heartbeatTimeoutMs: number;
  migrationTimeoutMs: number;
  /** Driver-specific proof that a migrated guest's memory arrived intact (QEMU: its serial log). */
  assertGuestIntact?: (agent: ContractAgent, guestId: string) => Promise<void>;
}

/** Both agents of a suite must share one shared-storage dir, as two hosts on one NFS export. */
export type MakeAgent = (name: string) => Promise<ContractAgent>;

async function heartbeatAdvancing(agent: AgentEndpoint, id: string, timeoutMs: number): Promise<number> {
  const first = await eventually(
    `a heartbeat of ${id}`,
    async () => (await ok<GuestState>(agent, 'GET', `/v1/guests/${id}`)).heartbeat ?? undefined,
    timeoutMs,
  );
  return eventually(
    `the heartbeat of ${id} to advance past ${first.counter}`,
    async () => {
      const beat = (await ok<GuestState>(agent, 'GET', `/v1/guests/${id}`)).heartbeat;
      return beat !== null && beat.counter > first.counter ? beat.counter : undefined;
    },
    timeoutMs,
  );
}

async function migrationEnds(
  agent: AgentEndpoint,
  id: string,
  timeoutMs: number,
  until: (status: MigrationStatus) => boolean = (s) =>
    ['completed', 'failed', 'cancelled'].includes(s.status),
): Promise<MigrationStatus> {
  return eventually(
    `migration of ${id} to reach the expected state`,
    async () => {
      const status = await ok<MigrationStatus>(agent, 'GET', `/v1/guests/${id}/migration`);
      return until(status) ? status : undefined;
    },
    timeoutMs,
    200,
  );
}

async function startedGuest(agent: AgentEndpoint, spec: GuestSpec, tuning: ContractTuning): Promise<void> {
  await ok(agent, 'PUT', `/v1/guests/${spec.id}`, spec);
  await ok(agent, 'POST', `/v1/guests/${spec.id}/start`);
  await heartbeatAdvancing(agent, spec.id, tuning.heartbeatTimeoutMs);
}

/** The host-agent contract (domain/agent-contract.ts), run against each driver. */
export function driverContract(name: string, makeAgent: MakeAgent, tuning: ContractTuning): void {
  describe(`agent contract: ${name}`, () => {
    let a: ContractAgent;
    let b: ContractAgent;

    beforeAll(async () => {
      [a, b] = await Promise.all([makeAgent('host-a'), makeAgent('host-b')]);
    });
    afterAll(async () => {
      await Promise.all([a?.stop(), b?.stop()]);
    });

    it('reports host facts', async () => {
      const facts = await ok<HostFacts>(a, 'GET', '/v1/facts');
      expect(facts.hostId).toBe(a.hostId);
      expect(facts.hostId).toMatch(/^[0-9a-f-]{36}$/);
      expect(facts.name).toBe('host-a');
      expect(facts.agentUrl).toBe(a.url);
      expect(facts.driver).toBe(tuning.driver);
      expect(facts.cpus).toBeGreaterThan(0);
      expect(facts.memoryMb).toBeGreaterThan(0);
      expect(facts.freeMemoryMb).toBeLessThanOrEqual(facts.memoryMb);
      expect(facts.networks).toContain('default');
      for (const field of ['cpuModel', 'microcode', 'kernel', 'qemuVersion', 'sharedStoragePath'] as const) {
        expect(facts[field]).not.toBe('');
      }
    });

    it('refuses callers without the right token with a 401 JSON error', async () => {
      for (const token of [null, 'wrong-token']) {
        const reply = await call<AgentError>(a, 'GET', '/v1/facts', undefined, token);
        expect(reply.status).toBe(401);
        expect(reply.body.error.code).toBe('unauthorized');
      }
    });

    it('answers a bad body with a 400 naming the field and what was expected', async () => {
      const spec = testSpec();
      const reply = await call<AgentError>(a, 'PUT', `/v1/guests/${spec.id}`, { ...spec, memoryMb: 'lots' });
      expect(reply.status).toBe(400);
      expect(reply.body.error.field).toBe('memoryMb');
      expect(reply.body.error.message).toMatch(/memoryMb.*expected number/);

      const mac = await call<AgentError>(a, 'PUT', `/v1/guests/${spec.id}`, {
        ...spec,
        networks: [{ name: 'default', mac: 'nope' }],
      });
      expect(mac.status).toBe(400);
      expect(mac.body.error.field).toBe('networks.0.mac');

      const json = await call<AgentError>(a, 'POST', `/v1/guests/${spec.id}/migration`, '{not json');
      expect(json.status).toBe(400);
      expect(json.body.error.code).toBe('invalid_json');

      const missing = await call<AgentError>(a, 'POST', `/v1/guests/${spec.id}/cleanup`, {
        migrationId: 'm',
      });
      expect(missing.status).toBe(400);
      expect(missing.body.error.field).toBe('role');
    });

    it('answers an unknown guest with a 404 naming it', async () => {
      for (const [method, path] of [
        ['GET', '/v1/guests/no-such-guest'],
        ['POST', '/v1/guests/no-such-guest/start'],
        ['GET', '/v1/guests/no-such-guest/migration'],
      ] as const) {
        const reply = await call<AgentError>(a, method, path);
        expect(reply.status, `${method} ${path}`).toBe(404);
        expect(reply.body.error.message).toContain('no-such-guest');
      }
    });

    it('runs a guest through its lifecycle, every call idempotent', async () => {
      const spec = testSpec();
      const created = await ok<GuestState>(a, 'PUT', `/v1/guests/${spec.id}`, spec);
      expect(created.status).toBe('defined');
      expect(created.spec).toEqual(spec);
      expect((await ok<GuestState>(a, 'PUT', `/v1/guests/${spec.id}`, spec)).status).toBe('defined');

      const conflicting = await call<AgentError>(a, 'PUT', `/v1/guests/${spec.id}`, {
        ...spec,
        memoryMb: 256,
      });
      expect(conflicting.status).toBe(409);
      expect(conflicting.body.error.code).toBe('spec_conflict');

      const listed = await ok<{ guests: GuestState[] }>(a, 'GET', '/v1/guests');
      expect(listed.guests.map((g) => g.id)).toContain(spec.id);

      const started = await ok<GuestState>(a, 'POST', `/v1/guests/${spec.id}/start`);
      expect(started.status).toBe('running');
      const again = await ok<GuestState>(a, 'POST', `/v1/guests/${spec.id}/start`);
      expect(again.status).toBe('running');
      expect(again.pid).toBe(started.pid);
      await heartbeatAdvancing(a, spec.id, tuning.heartbeatTimeoutMs);

      expect((await ok<GuestState>(a, 'POST', `/v1/guests/${spec.id}/resume`)).status).toBe('running');

      const stopped = await ok<GuestState>(a, 'POST', `/v1/guests/${spec.id}/stop`);
      expect(stopped.status).toBe('stopped');
      expect(stopped.pid).toBeNull();
      expect((await ok<GuestState>(a, 'POST', `/v1/guests/${spec.id}/stop`)).status).toBe('stopped');

      expect(await ok(a, 'DELETE', `/v1/guests/${spec.id}`)).toEqual({ destroyed: true });
      expect(await ok(a, 'DELETE', `/v1/guests/${spec.id}`)).toEqual({ destroyed: false });
      expect((await call(a, 'GET', `/v1/guests/${spec.id}`)).status).toBe(404);
    });

    it('live-migrates a running guest: destination runs, source paused, source cleaned', async () => {
      const spec = testSpec({ dirtyRateMibs: 1, fillMb: 16 });
      await startedGuest(a, spec, tuning);
      const migrationId = `m-${randomUUID()}`;
      const prepare = { migrationId, spec, listenAddress: '127.0.0.1' };

      const incoming = await ok<PrepareIncomingResult>(
        b,
        'POST',
        `/v1/guests/${spec.id}/prepare-incoming`,
        prepare,
      );
      expect(incoming.migrationId).toBe(migrationId);
      expect(incoming.nbdUri).toBeNull();
      expect(await ok(b, 'POST', `/v1/guests/${spec.id}/prepare-incoming`, prepare)).toEqual(incoming);
      expect((await ok<GuestState>(b, 'GET', `/v1/guests/${spec.id}`)).status).toBe('incoming');

      const request = { migrationId, uri: incoming.uri, downtimeLimitMs: 300 };
      const started = await ok<MigrationStatus>(a, 'POST', `/v1/guests/${spec.id}/migration`, request);
      expect(started.migrationId).toBe(migrationId);
      const retried = await ok<MigrationStatus>(a, 'POST', `/v1/guests/${spec.id}/migration`, request);
      expect(retried.migrationId).toBe(migrationId);

      const final = await migrationEnds(a, spec.id, tuning.migrationTimeoutMs);
      expect(final.status, final.errorDesc ?? '').toBe('completed');
      expect(final.transferredBytes).toBeGreaterThan(0);
      expect(final.downtimeMs).not.toBeNull();

      const destination = await eventually(
        'the destination to run',
        async () => {
          const guest = await ok<GuestState>(b, 'GET', `/v1/guests/${spec.id}`);
          return guest.status === 'running' ? guest : undefined;
        },
        tuning.heartbeatTimeoutMs,
      );
      expect(destination.hypervisorStatus).toBe('running');
      await heartbeatAdvancing(b, spec.id, tuning.heartbeatTimeoutMs);
      await tuning.assertGuestIntact?.(b, spec.id);
      expect((await ok<MigrationStatus>(b, 'GET', `/v1/guests/${spec.id}/migration`)).status).toBe(
        'completed',
      );

      const source = await ok<GuestState>(a, 'GET', `/v1/guests/${spec.id}`);
      expect(source.status).toBe('paused');
      expect(source.hypervisorStatus).toBe('postmigrate');

      const cleanup = { migrationId, role: 'source' };
      expect(await ok(a, 'POST', `/v1/guests/${spec.id}/cleanup`, cleanup)).toEqual({ cleaned: true });
      expect(await ok(a, 'POST', `/v1/guests/${spec.id}/cleanup`, cleanup)).toEqual({ cleaned: false });
      expect((await call(a, 'GET', `/v1/guests/${spec.id}`)).status).toBe(404);
      expect((await ok<GuestState>(b, 'GET', `/v1/guests/${spec.id}`)).status).toBe('running');

      expect(await ok(b, 'DELETE', `/v1/guests/${spec.id}`)).toEqual({ destroyed: true });
    });

    it('refuses source cleanup before completion, cancels, rolls the destination back', async () => {
      // Dirtying 48 MiB faster than a 4 MiB/s cap never converges with pre-copy alone.
      const spec = testSpec({ dirtyRateMibs: 40, fillMb: 48 });
      await startedGuest(a, spec, tuning);
      const migrationId = `m-${randomUUID()}`;
      const incoming = await ok<PrepareIncomingResult>(b, 'POST', `/v1/guests/${spec.id}/prepare-incoming`, {
        migrationId,
        spec,
        listenAddress: '127.0.0.1',
      });
      await ok(a, 'POST', `/v1/guests/${spec.id}/migration`, {
        migrationId,
        uri: incoming.uri,
        downtimeLimitMs: 50,
        maxBandwidthBytes: 4 * 1024 * 1024,
      });
      await migrationEnds(a, spec.id, tuning.migrationTimeoutMs, (s) => s.status === 'active');

      const early = await call<AgentError>(a, 'POST', `/v1/guests/${spec.id}/cleanup`, {
        migrationId,
        role: 'source',
      });
      expect(early.status).toBe(409);
      const postCopyOff = await call<AgentError>(a, 'POST', `/v1/guests/${spec.id}/migration/post-copy`);
      expect(postCopyOff.status).toBe(409);
      expect(postCopyOff.body.error.code).toBe('postcopy_not_enabled');
      const other = await call<AgentError>(a, 'POST', `/v1/guests/${spec.id}/migration`, {
        migrationId: 'another',
        uri: incoming.uri,
      });
      expect(other.status).toBe(409);

      const tuned = await ok<MigrationStatus>(a, 'POST', `/v1/guests/${spec.id}/migration/parameters`, {
        downtimeLimitMs: 60,
        maxBandwidthBytes: 5 * 1024 * 1024,
      });
      expect(tuned.status).toBe('active');

      const cancelled = await ok<MigrationStatus>(a, 'POST', `/v1/guests/${spec.id}/migration/cancel`);
      expect(cancelled.status).toBe('cancelled');
      expect((await ok<MigrationStatus>(a, 'POST', `/v1/guests/${spec.id}/migration/cancel`)).status).toBe(
        'cancelled',
      );
      expect((await ok<GuestState>(a, 'GET', `/v1/guests/${spec.id}`)).status).toBe('running');
      await heartbeatAdvancing(a, spec.id, tuning.heartbeatTimeoutMs);

      const rollback = { migrationId, role: 'destination' };
      expect(await ok(b, 'POST', `/v1/guests/${spec.id}/cleanup`, rollback)).toEqual({ cleaned: true });
      expect(await ok(b, 'POST', `/v1/guests/${spec.id}/cleanup`, rollback)).toEqual({ cleaned: false });
      expect(await ok(a, 'DELETE', `/v1/guests/${spec.id}`)).toEqual({ destroyed: true });
    });

    it('rolls back after completion: destination destroyed, source resumed and migratable again', async () => {
      const spec = testSpec();
      await startedGuest(a, spec, tuning);
      const migrationId = `m-${randomUUID()}`;
      const incoming = await ok<PrepareIncomingResult>(b, 'POST', `/v1/guests/${spec.id}/prepare-incoming`, {
        migrationId,
        spec,
        listenAddress: '127.0.0.1',
      });
      await ok(a, 'POST', `/v1/guests/${spec.id}/migration`, { migrationId, uri: incoming.uri });
      expect((await migrationEnds(a, spec.id, tuning.migrationTimeoutMs)).status).toBe('completed');

      // As when the destination's heartbeat check fails: throw it away, run the source again.
      const rollback = { migrationId, role: 'destination' };
      expect(await ok(b, 'POST', `/v1/guests/${spec.id}/cleanup`, rollback)).toEqual({ cleaned: true });
      const resumed = await ok<GuestState>(a, 'POST', `/v1/guests/${spec.id}/resume`);
      expect(resumed.status).toBe('running');
      await heartbeatAdvancing(a, spec.id, tuning.heartbeatTimeoutMs);
      expect((await ok<MigrationStatus>(a, 'GET', `/v1/guests/${spec.id}/migration`)).status).toBe('none');

      const again = `m-${randomUUID()}`;
      const second = await ok<PrepareIncomingResult>(b, 'POST', `/v1/guests/${spec.id}/prepare-incoming`, {
        migrationId: again,
        spec,
        listenAddress: '127.0.0.1',
      });
      await ok(a, 'POST', `/v1/guests/${spec.id}/migration`, { migrationId: again, uri: second.uri });
      expect((await migrationEnds(a, spec.id, tuning.migrationTimeoutMs)).status).toBe('completed');
      await heartbeatAdvancing(b, spec.id, tuning.heartbeatTimeoutMs);
      expect(
        await ok(a, 'POST', `/v1/guests/${spec.id}/cleanup`, { migrationId: again, role: 'source' }),
      ).toEqual({
        cleaned: true,
      });
      expect(await ok(b, 'DELETE', `/v1/guests/${spec.id}`)).toEqual({ destroyed: true });
    });

    it('finishes with post-copy a migration that pre-copy cannot', async () => {
      const spec = testSpec({ dirtyRateMibs: 40, fillMb: 48 });
      await startedGuest(a, spec, tuning);
      const migrationId = `m-${randomUUID()}`;
      const incoming = await ok<PrepareIncomingResult>(b, 'POST', `/v1/guests/${spec.id}/prepare-incoming`, {
        migrationId,
        spec,
        listenAddress: '127.0.0.1',
        postCopy: true,
      });
      await ok(a, 'POST', `/v1/guests/${spec.id}/migration`, {
        migrationId,
        uri: incoming.uri,
        downtimeLimitMs: 50,
        maxBandwidthBytes: 32 * 1024 * 1024,
        postCopy: true,
      });
      // Past the first pass, so that there is something left for post-copy to pull.
      await migrationEnds(a, spec.id, tuning.migrationTimeoutMs, (s) => s.dirtySyncCount >= 2);
      const switched = await ok<MigrationStatus>(a, 'POST', `/v1/guests/${spec.id}/migration/post-copy`);
      expect(['postcopy-active', 'completed']).toContain(switched.status);
      const final = await migrationEnds(a, spec.id, tuning.migrationTimeoutMs);
      expect(final.status, final.errorDesc ?? '').toBe('completed');

      await heartbeatAdvancing(b, spec.id, tuning.heartbeatTimeoutMs);
      await tuning.assertGuestIntact?.(b, spec.id);
      expect((await ok<GuestState>(a, 'GET', `/v1/guests/${spec.id}`)).status).toBe('paused');
      expect(await ok(a, 'POST', `/v1/guests/${spec.id}/cleanup`, { migrationId, role: 'source' })).toEqual({
        cleaned: true,
      });
      expect(await ok(b, 'DELETE', `/v1/guests/${spec.id}`)).toEqual({ destroyed: true });
    });
  });
}
