import { randomUUID } from 'node:crypto';
import { access } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { HypervisorDriver } from '../../agent/driver.ts';
import type {
  AgentError,
  DiskCopyStatus,
  DiskExportResult,
  GuestPingResult,
  GuestSpec,
  GuestState,
  HostFacts,
  IncomingMigration,
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
  /** The driver, for driver-specific hooks (the agent runs in the test's process). */
  driver?: HypervisorDriver;
}

/** A write a test makes to a guest's disk as the guest would: `length` bytes of `byte` at `offset`. */
export interface DiskWrite {
  offset: number;
  length: number;
  byte: number;
}

/** Driver hooks that let the block-migration test check data, not only statuses (QEMU). */
export interface DiskHooks {
  write(agent: ContractAgent, guestId: string, diskId: string, write: DiskWrite): Promise<void>;
  /** Block jobs QEMU still has for the guest. */
  blockJobs(agent: ContractAgent, guestId: string): Promise<number>;
  /**
   * After the migration: the destination's disk holds exactly `writes` (zeros elsewhere, bar what the
   * guest's own disk test wrote at the start), and the guest's own checks (if it could run them) agree.
   */
  verify(
    destination: ContractAgent,
    source: ContractAgent,
    guestId: string,
    diskId: string,
    writes: DiskWrite[],
  ): Promise<void>;
}

/** Driver hooks that let the disk-copy test check data (QEMU: the images themselves). */
export interface DiskCopyHooks {
  /** Writes known data into the image of a stopped guest's local disk. */
  fill(agent: ContractAgent, guestId: string, diskId: string): Promise<void>;
  /** The destination's image of the disk holds the same data as the source's. */
  compare(source: ContractAgent, destination: ContractAgent, guestId: string, diskId: string): Promise<void>;
}

export interface ContractTuning {
  driver: 'qemu' | 'sim';
  /** Boot plus two heartbeats. */
  heartbeatTimeoutMs: number;
  migrationTimeoutMs: number;
  /** Driver-specific proof that a migrated guest's memory arrived intact (QEMU: its serial log). */
  assertGuestIntact?: (agent: ContractAgent, guestId: string) => Promise<void>;
  /** Whether a TLS mismatch between the ends really breaks the stream (QEMU; the sim only records tls). */
  realTls?: boolean;
  disk?: DiskHooks;
  /** How long a paused guest's heartbeat is watched to stand still. */
  pauseWatchMs?: number;
  /**
   * Bandwidth cap while local disks are mirrored (default 4 MiB/s): slow enough to watch the mirror
   * phase, as fast as that allows (the sim copies the whole disk, QEMU skips its empty clusters).
   */
  mirrorBandwidthBytes?: number;
  /** Data checks of the cold disk copy (QEMU). */
  diskCopy?: DiskCopyHooks;
  /** What a disk export's nbdUri looks like (the test's disk is 'data', the agents listen on 127.0.0.1). */
  diskExportUri?: RegExp;
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

/** Whether the guest's own guest agent answers guest-ping (QEMU: the test image's agent/guest-image/qga.c). */
async function guestPing(agent: AgentEndpoint, id: string, timeoutMs?: number): Promise<boolean> {
  const body = timeoutMs === undefined ? undefined : { timeoutMs };
  return (await ok<GuestPingResult>(agent, 'POST', `/v1/guests/${id}/guest-ping`, body)).answered;
}

/** The guest agent answers (it starts with the guest, so within a boot's time). */
async function guestAgentAnswers(agent: AgentEndpoint, id: string, timeoutMs: number): Promise<void> {
  await eventually(
    `the guest agent of ${id} to answer`,
    async () => (await guestPing(agent, id)) || undefined,
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

/** Prepares `agent` (the destination) for migration `migrationId` of `spec`, listening on 127.0.0.1. */
function prepareIncoming(
  agent: AgentEndpoint,
  spec: GuestSpec,
  migrationId: string,
  options: { postCopy?: boolean; tls?: boolean } = {},
): Promise<PrepareIncomingResult> {
  return ok<PrepareIncomingResult>(agent, 'POST', `/v1/guests/${spec.id}/prepare-incoming`, {
    migrationId,
    spec,
    listenAddress: '127.0.0.1',
    ...options,
  });
}

async function guestStatus(
  agent: AgentEndpoint,
  id: string,
  status: GuestState['status'],
  timeoutMs: number,
) {
  return eventually(
    `guest ${id} to be ${status}`,
    async () => {
      const guest = await ok<GuestState>(agent, 'GET', `/v1/guests/${id}`);
      return guest.status === status ? guest : undefined;
    },
    timeoutMs,
  );
}

const MIB = 1024 * 1024;

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
      // The sim's modelled 10 Gbit/s link; test QEMU agents listen on loopback, which has no link speed.
      expect(facts.migrationLinkMbps).toBe(tuning.driver === 'sim' ? 10_000 : undefined);
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
      await guestAgentAnswers(a, spec.id, tuning.heartbeatTimeoutMs);

      expect((await ok<GuestState>(a, 'POST', `/v1/guests/${spec.id}/resume`)).status).toBe('running');

      const stopped = await ok<GuestState>(a, 'POST', `/v1/guests/${spec.id}/stop`);
      expect(stopped.status).toBe('stopped');
      expect(stopped.pid).toBeNull();
      expect((await ok<GuestState>(a, 'POST', `/v1/guests/${spec.id}/stop`)).status).toBe('stopped');
      expect(await guestPing(a, spec.id)).toBe(false);

      expect(await ok(a, 'DELETE', `/v1/guests/${spec.id}`)).toEqual({ destroyed: true });
      expect(await ok(a, 'DELETE', `/v1/guests/${spec.id}`)).toEqual({ destroyed: false });
      expect((await call(a, 'GET', `/v1/guests/${spec.id}`)).status).toBe(404);
      expect((await call(a, 'POST', `/v1/guests/${spec.id}/guest-ping`)).status).toBe(404);
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
      const requestedAt = Date.now();
      const started = await ok<MigrationStatus>(a, 'POST', `/v1/guests/${spec.id}/migration`, request);
      expect(started.migrationId).toBe(migrationId);
      expect(started.setupAt).toBeGreaterThanOrEqual(requestedAt);
      expect(started.startedAt).toBeGreaterThanOrEqual(started.setupAt!);
      expect(started.startedAt).toBeLessThanOrEqual(Date.now());
      expect(started.diskReady).toBe(true);
      expect(started.tls).toBe(false);
      const retried = await ok<MigrationStatus>(a, 'POST', `/v1/guests/${spec.id}/migration`, request);
      expect(retried.migrationId).toBe(migrationId);
      expect(retried.startedAt).toBe(started.startedAt);

      // Held reads (the monitor's long poll): each answers once the status is no longer the one it names,
      // woken by QEMU's MIGRATION event, or with a fresh sample after waitMs.
      let final = started;
      const heldUntil = Date.now() + tuning.migrationTimeoutMs;
      while (!['completed', 'failed', 'cancelled'].includes(final.status) && Date.now() < heldUntil) {
        const since = final.status;
        final = await ok<MigrationStatus>(
          a,
          'GET',
          `/v1/guests/${spec.id}/migration?waitMs=1000&unless=${since}`,
        );
        expect(final.migrationId).toBe(migrationId);
      }
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
      // The guest agent came along in guest memory and answers on the destination's channel; the
      // source's guest no longer runs to answer.
      await guestAgentAnswers(b, spec.id, tuning.heartbeatTimeoutMs);
      expect(await guestPing(a, spec.id, 300)).toBe(false);
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

    it('starts the destination ahead of its network, and migrates once it listens', async () => {
      const spec = testSpec({ dirtyRateMibs: 1, fillMb: 16 });
      await startedGuest(a, spec, tuning);
      const migrationId = `m-${randomUUID()}`;
      const launch = { migrationId, spec };
      const path = `/v1/guests/${spec.id}/prepare-incoming`;

      const launched = await ok<PrepareIncomingResult>(b, 'POST', path, launch);
      expect(launched).toEqual({ migrationId, uri: '', nbdUri: null });
      expect(await ok(b, 'POST', path, launch)).toEqual(launched);
      expect((await ok<GuestState>(b, 'GET', `/v1/guests/${spec.id}`)).status).toBe('incoming');
      expect(await ok(b, 'GET', `/v1/guests/${spec.id}/incoming`)).toMatchObject({ migrationId, uri: '' });

      const listening = await ok<PrepareIncomingResult>(b, 'POST', path, {
        ...launch,
        listenAddress: '127.0.0.1',
      });
      expect(listening.migrationId).toBe(migrationId);
      expect(listening.uri).not.toBe('');
      // Listening already: a late launch, or the same address again, answers where it listens.
      expect(await ok(b, 'POST', path, launch)).toEqual(listening);
      expect(await ok(b, 'POST', path, { ...launch, listenAddress: '127.0.0.1' })).toEqual(listening);

      const request = { migrationId, uri: listening.uri, downtimeLimitMs: 300 };
      let status = await ok<MigrationStatus>(a, 'POST', `/v1/guests/${spec.id}/migration`, request);
      const until = Date.now() + tuning.migrationTimeoutMs;
      while (!['completed', 'failed', 'cancelled'].includes(status.status) && Date.now() < until) {
        status = await ok<MigrationStatus>(
          a,
          'GET',
          `/v1/guests/${spec.id}/migration?waitMs=1000&unless=${status.status}`,
        );
      }
      expect(status.status, status.errorDesc ?? '').toBe('completed');
      await eventually(
        'the destination to run',
        async () =>
          (await ok<GuestState>(b, 'GET', `/v1/guests/${spec.id}`)).status === 'running' ? true : undefined,
        tuning.heartbeatTimeoutMs,
      );
      await heartbeatAdvancing(b, spec.id, tuning.heartbeatTimeoutMs);
      expect(await ok(a, 'POST', `/v1/guests/${spec.id}/cleanup`, { migrationId, role: 'source' })).toEqual({
        cleaned: true,
      });
      expect(await ok(b, 'DELETE', `/v1/guests/${spec.id}`)).toEqual({ destroyed: true });
    });

    it('refuses source cleanup before completion, cancels, rolls the destination back', async () => {
      // Dirtying 48 MiB faster than a 4 MiB/s cap never converges with pre-copy alone.
      const spec = testSpec({ dirtyRateMibs: 40, fillMb: 48 });
      await startedGuest(a, spec, tuning);
      const migrationId = `m-${randomUUID()}`;
      const incoming = await prepareIncoming(b, spec, migrationId);
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
      const incoming = await prepareIncoming(b, spec, migrationId);
      await ok(a, 'POST', `/v1/guests/${spec.id}/migration`, { migrationId, uri: incoming.uri });
      const completed = await migrationEnds(a, spec.id, tuning.migrationTimeoutMs);
      expect(completed.status).toBe('completed');
      expect(completed.postCopyStarted).toBe(false);
      await guestStatus(b, spec.id, 'running', tuning.heartbeatTimeoutMs);

      // The guest runs on b now: the source must not run it as well unless the call says it knows.
      for (const [body, code] of [
        [undefined, 'source_migrated'],
        [{}, 'source_migrated'],
        [{ migrationId }, 'source_migrated'],
        [{ expectMigrationStatus: 'completed' }, 'source_migrated'],
        [{ migrationId, expectMigrationStatus: 'active' }, 'migration_state_changed'],
        [{ migrationId: 'another', expectMigrationStatus: 'completed' }, 'migration_mismatch'],
      ] as const) {
        const refused = await call<AgentError>(a, 'POST', `/v1/guests/${spec.id}/resume`, body);
        expect(refused.status, JSON.stringify(body)).toBe(409);
        expect(refused.body.error.code, JSON.stringify(body)).toBe(code);
      }
      const still = await ok<GuestState>(a, 'GET', `/v1/guests/${spec.id}`);
      expect(still.status).toBe('paused');
      expect(still.hypervisorStatus).toBe('postmigrate');

      // Nor may the running destination, possibly the only copy, go without the state the caller saw.
      const rollback = { migrationId, role: 'destination' };
      const runsHere = await call<AgentError>(b, 'POST', `/v1/guests/${spec.id}/cleanup`, rollback);
      expect(runsHere.status).toBe(409);
      expect(runsHere.body.error.code).toBe('guest_runs_here');
      expect(runsHere.body.error.message).toContain(migrationId);
      const stale = await call<AgentError>(b, 'POST', `/v1/guests/${spec.id}/cleanup`, {
        ...rollback,
        expectState: 'incoming',
      });
      expect(stale.status).toBe(409);
      expect(stale.body.error.code).toBe('state_changed');
      expect((await ok<GuestState>(b, 'GET', `/v1/guests/${spec.id}`)).status).toBe('running');
      await heartbeatAdvancing(b, spec.id, tuning.heartbeatTimeoutMs);

      // As when the destination's heartbeat check fails: throw it away, run the source again.
      const seen = { ...rollback, expectState: 'running' };
      expect(await ok(b, 'POST', `/v1/guests/${spec.id}/cleanup`, seen)).toEqual({ cleaned: true });
      expect(await ok(b, 'POST', `/v1/guests/${spec.id}/cleanup`, seen)).toEqual({ cleaned: false });
      expect((await call(b, 'GET', `/v1/guests/${spec.id}`)).status).toBe(404);
      const resumed = await ok<GuestState>(a, 'POST', `/v1/guests/${spec.id}/resume`, {
        migrationId,
        expectMigrationStatus: 'completed',
      });
      expect(resumed.status).toBe('running');
      await heartbeatAdvancing(a, spec.id, tuning.heartbeatTimeoutMs);
      expect((await ok<MigrationStatus>(a, 'GET', `/v1/guests/${spec.id}/migration`)).status).toBe('none');

      const again = `m-${randomUUID()}`;
      const second = await prepareIncoming(b, spec, again);
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
      const cap = 32 * 1024 * 1024;
      const spec = testSpec({ dirtyRateMibs: 40, fillMb: 48 });
      await startedGuest(a, spec, tuning);
      const migrationId = `m-${randomUUID()}`;
      const incoming = await prepareIncoming(b, spec, migrationId, { postCopy: true });
      await ok(a, 'POST', `/v1/guests/${spec.id}/migration`, {
        migrationId,
        uri: incoming.uri,
        downtimeLimitMs: 50,
        maxBandwidthBytes: cap,
        postCopy: true,
      });
      // Past the first pass, so that there is something left for post-copy to pull.
      await migrationEnds(a, spec.id, tuning.migrationTimeoutMs, (s) => s.dirtySyncCount >= 2);
      const switched = await ok<MigrationStatus>(a, 'POST', `/v1/guests/${spec.id}/migration/post-copy`);
      expect(['postcopy-active', 'completed']).toContain(switched.status);
      const final = await migrationEnds(a, spec.id, tuning.migrationTimeoutMs);
      expect(final.status, final.errorDesc ?? '').toBe('completed');
      expect(final.postCopyStarted).toBe(true);
      // The cap holds after the switch too (QEMU: max-postcopy-bandwidth; without it QEMU sent ~28 MB in
      // 0.1 s here): post-copy sent at most at the cap, give or take one of QEMU's 100 ms rate-limit windows.
      if (switched.status === 'postcopy-active') {
        const seconds = ((final.totalTimeMs ?? 0) - (switched.totalTimeMs ?? 0)) / 1000;
        const sent = final.transferredBytes - switched.transferredBytes;
        expect(sent, `${sent} bytes in ${seconds} s of post-copy`).toBeLessThanOrEqual(
          cap * 1.25 * seconds + cap / 10,
        );
      }

      await heartbeatAdvancing(b, spec.id, tuning.heartbeatTimeoutMs);
      await tuning.assertGuestIntact?.(b, spec.id);
      expect((await ok<GuestState>(a, 'GET', `/v1/guests/${spec.id}`)).status).toBe('paused');

      // The source's memory is stale for good: no resume brings it back, whatever the call says.
      const refuseResume = async () => {
        for (const body of [undefined, { migrationId, expectMigrationStatus: 'completed' }]) {
          const refused = await call<AgentError>(a, 'POST', `/v1/guests/${spec.id}/resume`, body);
          expect(refused.status, JSON.stringify(body)).toBe(409);
          expect(refused.body.error.code, JSON.stringify(body)).toBe('postcopy_started');
        }
        const source = await ok<GuestState>(a, 'GET', `/v1/guests/${spec.id}`);
        expect(source.status).toBe('paused');
        expect(source.hypervisorStatus).toBe('postmigrate');
        expect((await ok<MigrationStatus>(a, 'GET', `/v1/guests/${spec.id}/migration`)).postCopyStarted).toBe(
          true,
        );
      };
      await refuseResume();
      if (tuning.driver === 'qemu') {
        // The record on disk keeps a restarted agent refusing.
        await a.stop({ leaveGuests: true });
        a = await makeAgent('host-a');
        await refuseResume();
      }
      const destinationCleanup = await call<AgentError>(b, 'POST', `/v1/guests/${spec.id}/cleanup`, {
        migrationId,
        role: 'destination',
      });
      expect(destinationCleanup.status).toBe(409);
      expect(destinationCleanup.body.error.code).toBe('guest_runs_here');
      expect((await ok<GuestState>(b, 'GET', `/v1/guests/${spec.id}`)).status).toBe('running');
      expect(await ok(a, 'POST', `/v1/guests/${spec.id}/cleanup`, { migrationId, role: 'source' })).toEqual({
        cleaned: true,
      });
      expect(await ok(b, 'DELETE', `/v1/guests/${spec.id}`)).toEqual({ destroyed: true });
    });

    it('reports TLS readiness and admits guests only into the memory it has left', async () => {
      const facts = await ok<HostFacts>(a, 'GET', '/v1/facts');
      expect(facts.tlsReady).toBe(true);
      const huge = testSpec({ memoryMb: facts.memoryMb + 1 });
      const defined = await call<AgentError>(a, 'PUT', `/v1/guests/${huge.id}`, huge);
      expect(defined.status).toBe(409);
      expect(defined.body.error.code).toBe('insufficient_memory');
      expect(defined.body.error.field).toBe('memoryMb');
      expect(defined.body.error.message).toContain(`needs ${facts.memoryMb + 1} MiB`);
      expect(defined.body.error.message).toContain(`${facts.memoryMb} MiB in all`);
      const incoming = await call<AgentError>(b, 'POST', `/v1/guests/${huge.id}/prepare-incoming`, {
        migrationId: 'm-huge',
        spec: huge,
        listenAddress: '127.0.0.1',
      });
      expect(incoming.status).toBe(409);
      expect(incoming.body.error.code).toBe('insufficient_memory');
      expect(incoming.body.error.field).toBe('spec.memoryMb');
      expect((await call(b, 'GET', `/v1/guests/${huge.id}`)).status).toBe(404);
    });

    it('validates the migration tuning fields, naming them', async () => {
      const spec = testSpec();
      for (const [body, field] of [
        [{ migrationId: 'm', uri: 'x', cpuThrottleInitial: 0 }, 'cpuThrottleInitial'],
        [{ migrationId: 'm', uri: 'x', maxCpuThrottle: 100 }, 'maxCpuThrottle'],
        [{ migrationId: 'm', uri: 'x', xbzrle: 'yes' }, 'xbzrle'],
        [{ migrationId: 'm', uri: 'x', nbdUri: '' }, 'nbdUri'],
      ] as const) {
        const reply = await call<AgentError>(a, 'POST', `/v1/guests/${spec.id}/migration`, body);
        expect(reply.status, field).toBe(400);
        expect(reply.body.error.field).toBe(field);
      }
      const step = await call<AgentError>(a, 'POST', `/v1/guests/${spec.id}/migration/parameters`, {
        cpuThrottleIncrement: 100,
      });
      expect(step.status).toBe(400);
      expect(step.body.error.field).toBe('cpuThrottleIncrement');
      const initial = await call<AgentError>(a, 'POST', `/v1/guests/${spec.id}/migration/parameters`, {
        cpuThrottleInitial: 120,
      });
      expect(initial.status).toBe(400);
      expect(initial.body.error.field).toBe('cpuThrottleInitial');
    });

    it("refuses a migration uri that is not a registered host's prepared port: nothing runs, the guest is untouched", async () => {
      const spec = testSpec();
      await startedGuest(a, spec, tuning);
      const migrationId = `m-${randomUUID()}`;
      const incoming = await prepareIncoming(b, spec, migrationId);
      // What the destination says it prepared, as the source agent asks it.
      const prepared = await ok<IncomingMigration>(b, 'GET', `/v1/guests/${spec.id}/incoming`);
      expect(prepared).toMatchObject({ migrationId, uri: incoming.uri, nbdUri: null, nbdPort: null });
      expect(prepared.port).toBeGreaterThan(0);
      expect((await call<AgentError>(a, 'GET', `/v1/guests/${spec.id}/incoming`)).body.error.code).toBe(
        'incoming_not_found',
      );

      const pwned = path.join(os.tmpdir(), `vmmig-pwned-${randomUUID()}`);
      const agentPort = new URL(a.url).port;
      const refusals: [string, string][] = [
        [`exec:touch ${pwned}`, 'invalid_request'],
        [`file:${pwned}`, 'invalid_request'],
        [`unix:${pwned}.sock`, 'invalid_request'],
        ['fd:3', 'invalid_request'],
        ['rdma:127.0.0.1:4444', 'invalid_request'],
        ['tcp:127.0.0.1:4444,ipv4=on', 'invalid_request'],
        ['nonsense', 'invalid_request'],
        [`${incoming.uri} `, 'invalid_request'],
        // Same shape, an address no registered host has.
        [incoming.uri.replace('127.0.0.1', '192.0.2.1'), 'unknown_peer'],
        // A registered address, the port of the source's own agent: QEMU's destination did not prepare it
        // (not_prepared); for the sim that port is the source itself, no other registered host.
        [
          incoming.uri.replace(/127\.0\.0\.1:\d+/, `127.0.0.1:${agentPort}`),
          tuning.driver === 'sim' ? 'unknown_peer' : 'not_prepared',
        ],
        // The destination's host, not what it prepared: another port (QEMU), another guest (sim).
        [
          tuning.driver === 'sim'
            ? incoming.uri.replace(`guest=${spec.id}`, `guest=${spec.id}-other`)
            : incoming.uri.replace(/:\d+$/, `:${prepared.port! + 1}`),
          'not_prepared',
        ],
      ];
      for (const [uri, code] of refusals) {
        const reply = await call<AgentError>(a, 'POST', `/v1/guests/${spec.id}/migration`, {
          migrationId,
          uri,
        });
        expect(reply.status, uri).toBe(400);
        expect(reply.body.error.field, uri).toBe('uri');
        expect(reply.body.error.code, uri).toBe(code);
      }
      const nbd = await call<AgentError>(a, 'POST', `/v1/guests/${spec.id}/migration`, {
        migrationId,
        uri: incoming.uri,
        nbdUri: `exec:touch ${pwned}`,
      });
      expect(nbd.status).toBe(400);
      expect(nbd.body.error.field).toBe('nbdUri');
      await expect(access(pwned)).rejects.toThrow(/ENOENT/);

      // Nothing started on either end.
      const source = await ok<GuestState>(a, 'GET', `/v1/guests/${spec.id}`);
      expect(source.status).toBe('running');
      expect(await ok<MigrationStatus>(a, 'GET', `/v1/guests/${spec.id}/migration`)).toMatchObject({
        migrationId: null,
        status: 'none',
      });
      expect((await ok<GuestState>(b, 'GET', `/v1/guests/${spec.id}`)).status).toBe('incoming');
      expect(await ok(b, 'GET', `/v1/guests/${spec.id}/incoming`)).toEqual(prepared);
      await heartbeatAdvancing(a, spec.id, tuning.heartbeatTimeoutMs);

      // Where this host listens is an address, nothing QEMU could read as more.
      for (const listenAddress of ['127.0.0.1:0,to=5', `exec:touch ${pwned}`]) {
        const reply = await call<AgentError>(b, 'POST', `/v1/guests/${spec.id}/prepare-incoming`, {
          migrationId: `m-${randomUUID()}`,
          spec,
          listenAddress,
        });
        expect(reply.status, listenAddress).toBe(400);
        expect(reply.body.error.field, listenAddress).toBe('listenAddress');
      }

      // Disk imports and network probes follow the same rule.
      for (const nbdUri of [`exec:touch ${pwned}`, 'file:///etc/passwd', 'nbd://192.0.2.1:10809/data']) {
        const reply = await call<AgentError>(b, 'POST', `/v1/guests/${spec.id}/disks/data/import`, {
          nbdUri,
        });
        expect(reply.status, nbdUri).toBe(400);
        expect(reply.body.error.field, nbdUri).toBe('nbdUri');
      }
      await expect(access(pwned)).rejects.toThrow(/ENOENT/);
      const listener = await ok<{ port: number }>(b, 'POST', '/v1/network/listen', { address: '127.0.0.1' });
      expect(
        await ok(a, 'POST', '/v1/network/connect', { address: '127.0.0.1', port: listener.port }),
      ).toMatchObject({ reachable: true });
      for (const address of ['192.0.2.1', 'example.com', 'exec:x']) {
        const probe = await call<AgentError>(a, 'POST', '/v1/network/connect', { address, port: 80 });
        expect(probe.status, address).toBe(400);
        expect(probe.body.error.field, address).toBe('address');
      }

      expect(
        await ok(b, 'POST', `/v1/guests/${spec.id}/cleanup`, { migrationId, role: 'destination' }),
      ).toEqual({ cleaned: true });
      expect(await ok(a, 'DELETE', `/v1/guests/${spec.id}`)).toEqual({ destroyed: true });
    });

    it('pauses a guest; a paused migration converges and the guest arrives paused', async () => {
      const spec = testSpec({ dirtyRateMibs: 40, fillMb: 48 });
      await startedGuest(a, spec, tuning);
      const paused = await ok<GuestState>(a, 'POST', `/v1/guests/${spec.id}/pause`);
      expect(paused.status).toBe('paused');
      expect((await ok<GuestState>(a, 'POST', `/v1/guests/${spec.id}/pause`)).status).toBe('paused');
      const before = (await ok<GuestState>(a, 'GET', `/v1/guests/${spec.id}`)).heartbeat!.counter;
      await new Promise((resolve) => setTimeout(resolve, tuning.pauseWatchMs ?? 2_500));
      const still = (await ok<GuestState>(a, 'GET', `/v1/guests/${spec.id}`)).heartbeat!.counter;
      expect(still - before).toBeLessThanOrEqual(1);
      expect((await ok<GuestState>(a, 'POST', `/v1/guests/${spec.id}/resume`)).status).toBe('running');
      await heartbeatAdvancing(a, spec.id, tuning.heartbeatTimeoutMs);

      // Dirtying 48 MiB at 40 MiB/s never converges at 16 MiB/s: pausing the guest (force-complete) does.
      const migrationId = `m-${randomUUID()}`;
      const incoming = await prepareIncoming(b, spec, migrationId);
      await ok(a, 'POST', `/v1/guests/${spec.id}/migration`, {
        migrationId,
        uri: incoming.uri,
        downtimeLimitMs: 50,
        maxBandwidthBytes: 16 * MIB,
        autoConverge: false,
      });
      await migrationEnds(a, spec.id, tuning.migrationTimeoutMs, (s) => s.status === 'active');
      expect((await ok<GuestState>(a, 'POST', `/v1/guests/${spec.id}/pause`)).status).toBe('paused');
      await ok(a, 'POST', `/v1/guests/${spec.id}/migration/parameters`, { maxBandwidthBytes: 0 });
      const final = await migrationEnds(a, spec.id, tuning.migrationTimeoutMs);
      expect(final.status, final.errorDesc ?? '').toBe('completed');

      // QEMU carries the run state over: a guest paused at the switch-over is paused on arrival.
      await guestStatus(b, spec.id, 'paused', tuning.heartbeatTimeoutMs);
      expect((await ok<GuestState>(b, 'POST', `/v1/guests/${spec.id}/resume`)).status).toBe('running');
      await heartbeatAdvancing(b, spec.id, tuning.heartbeatTimeoutMs);
      await tuning.assertGuestIntact?.(b, spec.id);
      expect(await ok(a, 'POST', `/v1/guests/${spec.id}/cleanup`, { migrationId, role: 'source' })).toEqual({
        cleaned: true,
      });
      expect(await ok(b, 'DELETE', `/v1/guests/${spec.id}`)).toEqual({ destroyed: true });
      expect((await call<AgentError>(b, 'POST', `/v1/guests/${spec.id}/pause`)).status).toBe(404);
    });

    it('migrates over TLS; a stream whose ends disagree on TLS fails and the source runs on', async () => {
      const spec = testSpec({ dirtyRateMibs: 1, fillMb: 8 });
      await startedGuest(a, spec, tuning);
      const prepare = (migrationId: string, tls: boolean) => prepareIncoming(b, spec, migrationId, { tls });

      if (tuning.realTls) {
        for (const [sourceTls, destinationTls] of [
          [true, false],
          [false, true],
        ] as const) {
          const migrationId = `m-${randomUUID()}`;
          const incoming = await prepare(migrationId, destinationTls);
          await ok(a, 'POST', `/v1/guests/${spec.id}/migration`, {
            migrationId,
            uri: incoming.uri,
            tls: sourceTls,
          });
          const final = await migrationEnds(a, spec.id, tuning.migrationTimeoutMs);
          expect(final.status, `source tls=${sourceTls}, destination tls=${destinationTls}`).toBe('failed');
          expect(final.tls).toBe(sourceTls);
          expect((await ok<GuestState>(a, 'GET', `/v1/guests/${spec.id}`)).status).toBe('running');
          expect(
            await ok(b, 'POST', `/v1/guests/${spec.id}/cleanup`, { migrationId, role: 'destination' }),
          ).toEqual({ cleaned: true });
        }
        await heartbeatAdvancing(a, spec.id, tuning.heartbeatTimeoutMs);
      }

      const migrationId = `m-${randomUUID()}`;
      const incoming = await prepare(migrationId, true);
      expect(await prepare(migrationId, true)).toEqual(incoming);
      const plain = await call<AgentError>(b, 'POST', `/v1/guests/${spec.id}/prepare-incoming`, {
        migrationId,
        spec,
        listenAddress: '127.0.0.1',
        tls: false,
      });
      expect(plain.status).toBe(409);
      expect(plain.body.error.code).toBe('tls_conflict');
      const started = await ok<MigrationStatus>(a, 'POST', `/v1/guests/${spec.id}/migration`, {
        migrationId,
        uri: incoming.uri,
        tls: true,
      });
      expect(started.tls).toBe(true);
      const final = await migrationEnds(a, spec.id, tuning.migrationTimeoutMs);
      expect(final.status, final.errorDesc ?? '').toBe('completed');
      expect(final.tls).toBe(true);
      await guestStatus(b, spec.id, 'running', tuning.heartbeatTimeoutMs);
      await heartbeatAdvancing(b, spec.id, tuning.heartbeatTimeoutMs);
      await tuning.assertGuestIntact?.(b, spec.id);
      expect((await ok<MigrationStatus>(b, 'GET', `/v1/guests/${spec.id}/migration`)).tls).toBe(true);
      expect(await ok(a, 'POST', `/v1/guests/${spec.id}/cleanup`, { migrationId, role: 'source' })).toEqual({
        cleaned: true,
      });
      expect(await ok(b, 'DELETE', `/v1/guests/${spec.id}`)).toEqual({ destroyed: true });
    });

    it('migrates local disks over NBD (mirrors first; cancel keeps the source on its disks; there and back, TLS, post-copy)', async () => {
      // One local disk and no shared one, so that the guest's disk test (if the image can) uses it.
      const spec = testSpec({
        disks: [{ id: 'data', sizeMb: 16, storage: 'local', cache: 'none' }],
        dirtyRateMibs: 1,
        fillMb: 8,
        diskTest: true,
      });
      await startedGuest(a, spec, tuning);
      const mirrorBandwidth = tuning.mirrorBandwidthBytes ?? 4 * MIB;
      const writes: DiskWrite[] = [];
      const write = async (agent: ContractAgent, w: DiskWrite) => {
        if (tuning.disk === undefined) return;
        await tuning.disk.write(agent, spec.id, 'data', w);
        writes.push(w);
      };
      await write(a, { offset: 4 * MIB, length: 6 * MIB, byte: 0x5a });
      const prepare = (migrationId: string) => prepareIncoming(b, spec, migrationId);

      // 1. Cancelled while mirroring: the mirrors stop, the source runs on, the destination goes.
      const cancelledId = `m-${randomUUID()}`;
      const first = await prepare(cancelledId);
      expect(first.nbdUri).toMatch(/^nbd:127\.0\.0\.1:\d+$/);
      expect(await prepare(cancelledId)).toEqual(first);
      const missing = await call<AgentError>(a, 'POST', `/v1/guests/${spec.id}/migration`, {
        migrationId: cancelledId,
        uri: first.uri,
      });
      expect(missing.status).toBe(400);
      expect(missing.body.error.field).toBe('nbdUri');
      const slow = await ok<MigrationStatus>(a, 'POST', `/v1/guests/${spec.id}/migration`, {
        migrationId: cancelledId,
        uri: first.uri,
        nbdUri: first.nbdUri,
        maxBandwidthBytes: 1 * MIB,
      });
      expect(slow.status).toBe('setup');
      expect(slow.diskReady).toBe(false);
      expect(slow.setupAt).toBeLessThanOrEqual(slow.startedAt!);
      const postCopy = await call<AgentError>(a, 'POST', `/v1/guests/${spec.id}/migration/post-copy`);
      expect(postCopy.status).toBe(409);
      const cancelled = await ok<MigrationStatus>(a, 'POST', `/v1/guests/${spec.id}/migration/cancel`);
      expect(cancelled.status).toBe('cancelled');
      expect(cancelled.diskReady).toBe(false);
      if (tuning.disk) expect(await tuning.disk.blockJobs(a, spec.id)).toBe(0);
      expect((await ok<GuestState>(a, 'GET', `/v1/guests/${spec.id}`)).status).toBe('running');
      expect(
        await ok(b, 'POST', `/v1/guests/${spec.id}/cleanup`, {
          migrationId: cancelledId,
          role: 'destination',
        }),
      ).toEqual({ cleaned: true });
      await heartbeatAdvancing(a, spec.id, tuning.heartbeatTimeoutMs);

      if (tuning.disk) {
        // 1b. The destination goes away while mirroring: the mirror fails, so does the migration; the
        // source runs on its own disks.
        const lostId = `m-${randomUUID()}`;
        const lost = await prepare(lostId);
        await ok(a, 'POST', `/v1/guests/${spec.id}/migration`, {
          migrationId: lostId,
          uri: lost.uri,
          nbdUri: lost.nbdUri,
          maxBandwidthBytes: 1 * MIB,
        });
        expect(await ok(b, 'DELETE', `/v1/guests/${spec.id}`)).toEqual({ destroyed: true });
        // A rate-limited mirror sleeps off what it sent (16 s at 1 MiB/s) before it sees the error;
        // a new speed wakes it.
        await ok(a, 'POST', `/v1/guests/${spec.id}/migration/parameters`, { maxBandwidthBytes: 0 });
        const failed = await migrationEnds(a, spec.id, tuning.migrationTimeoutMs);
        expect(failed.status).toBe('failed');
        expect(failed.errorDesc).toMatch(/mirror of disk 'data' failed/);
        expect(await tuning.disk.blockJobs(a, spec.id)).toBe(0);
        expect((await ok<GuestState>(a, 'GET', `/v1/guests/${spec.id}`)).status).toBe('running');
      }

      // 2. a -> b, pre-copy, with writes while the disk is mirrored and while the RAM is copied.
      const migrationId = `m-${randomUUID()}`;
      const incoming = await prepare(migrationId);
      const request = {
        migrationId,
        uri: incoming.uri,
        nbdUri: incoming.nbdUri,
        maxBandwidthBytes: mirrorBandwidth,
      };
      const requestedAt = Date.now();
      const started = await ok<MigrationStatus>(a, 'POST', `/v1/guests/${spec.id}/migration`, request);
      expect(started.status).toBe('setup');
      expect(started.diskReady).toBe(false);
      expect(started.diskTotalBytes).toBeGreaterThanOrEqual(16 * MIB);
      expect(started.setupAt).toBeGreaterThanOrEqual(requestedAt);
      expect(started.startedAt).toBeGreaterThanOrEqual(started.setupAt!);
      expect(
        (await ok<MigrationStatus>(a, 'POST', `/v1/guests/${spec.id}/migration`, request)).startedAt,
      ).toBe(started.startedAt);
      await write(a, { offset: 11 * MIB, length: 1 * MIB, byte: 0x6b });
      const copying = await migrationEnds(
        a,
        spec.id,
        tuning.migrationTimeoutMs,
        (s) => s.diskReady === true || s.status !== 'setup',
      );
      expect(copying.status, copying.errorDesc ?? '').not.toBe('failed');
      expect(copying.diskReady).toBe(true);
      await write(a, { offset: 12 * MIB, length: 1 * MIB, byte: 0x7c });
      await ok(a, 'POST', `/v1/guests/${spec.id}/migration/parameters`, { maxBandwidthBytes: 0 });
      const final = await migrationEnds(a, spec.id, tuning.migrationTimeoutMs);
      expect(final.status, final.errorDesc ?? '').toBe('completed');
      expect(final.diskReady).toBe(true);
      expect(final.diskTransferredBytes).toBeGreaterThanOrEqual(16 * MIB);
      expect(final.diskRemainingBytes).toBe(0);
      expect(final.startedAt).toBe(started.startedAt);
      await guestStatus(b, spec.id, 'running', tuning.heartbeatTimeoutMs);
      await heartbeatAdvancing(b, spec.id, tuning.heartbeatTimeoutMs);
      await tuning.assertGuestIntact?.(b, spec.id);
      expect(await ok(a, 'POST', `/v1/guests/${spec.id}/cleanup`, { migrationId, role: 'source' })).toEqual({
        cleaned: true,
      });

      // 3. b -> a, back from the disk b received, over TLS (RAM and NBD) and finished with post-copy.
      const backId = `m-${randomUUID()}`;
      const back = await prepareIncoming(a, spec, backId, { tls: true, postCopy: true });
      const backStarted = await ok<MigrationStatus>(b, 'POST', `/v1/guests/${spec.id}/migration`, {
        migrationId: backId,
        uri: back.uri,
        nbdUri: back.nbdUri,
        maxBandwidthBytes: mirrorBandwidth,
        tls: true,
        postCopy: true,
      });
      expect(backStarted.tls).toBe(true);
      await write(b, { offset: 14 * MIB, length: 1 * MIB, byte: 0x8d });
      // The RAM copy runs once the mirrors are in step (diskReady may show a moment before it).
      const ready = await migrationEnds(b, spec.id, tuning.migrationTimeoutMs, (s) => s.status !== 'setup');
      expect(ready.status, ready.errorDesc ?? '').toBe('active');
      expect(ready.diskReady).toBe(true);
      await ok(b, 'POST', `/v1/guests/${spec.id}/migration/parameters`, {
        maxBandwidthBytes: 8 * mirrorBandwidth,
      });
      // Post-copy runs the guest on a at once: the mirrors must be complete by then.
      const switched = await ok<MigrationStatus>(b, 'POST', `/v1/guests/${spec.id}/migration/post-copy`);
      expect(['active', 'postcopy-active', 'completed']).toContain(switched.status);
      const backFinal = await migrationEnds(b, spec.id, tuning.migrationTimeoutMs);
      expect(backFinal.status, backFinal.errorDesc ?? '').toBe('completed');
      expect(backFinal.tls).toBe(true);
      await guestStatus(a, spec.id, 'running', tuning.heartbeatTimeoutMs);
      await heartbeatAdvancing(a, spec.id, tuning.heartbeatTimeoutMs);
      await tuning.assertGuestIntact?.(a, spec.id);
      await tuning.disk?.verify(a, b, spec.id, 'data', writes);
      expect(
        await ok(b, 'POST', `/v1/guests/${spec.id}/cleanup`, { migrationId: backId, role: 'source' }),
      ).toEqual({ cleaned: true });
      expect(await ok(a, 'DELETE', `/v1/guests/${spec.id}`)).toEqual({ destroyed: true });
    });

    it("copies a stopped guest's local disk to another host (export, import, progress; every call idempotent)", async () => {
      const spec = testSpec({
        disks: [
          { id: 'root', sizeMb: 16, storage: 'shared', cache: 'none' },
          { id: 'data', sizeMb: 64, storage: 'local', cache: 'none' },
        ],
      });
      const guest = `/v1/guests/${spec.id}`;
      const exportPath = `${guest}/disks/data/export`;
      const importPath = `${guest}/disks/data/import`;
      const refused = async (agent: AgentEndpoint, method: string, path: string, body?: unknown) => {
        const reply = await call<AgentError>(agent, method, path, body);
        return { status: reply.status, code: reply.body?.error?.code, message: reply.body?.error?.message };
      };

      await ok(a, 'PUT', guest, spec);
      await tuning.diskCopy?.fill(a, spec.id, 'data');

      // Refusals on the source: unknown guest or disk, a shared disk, a guest that runs.
      expect(await refused(a, 'POST', `/v1/guests/no-such-guest/disks/data/export`, {})).toMatchObject({
        status: 404,
        code: 'guest_not_found',
      });
      expect(await refused(a, 'POST', `${guest}/disks/nope/export`, {})).toMatchObject({
        status: 404,
        code: 'disk_not_found',
      });
      expect(await refused(a, 'POST', `${guest}/disks/root/export`, {})).toMatchObject({
        status: 409,
        code: 'disk_not_local',
      });
      await ok(a, 'POST', `${guest}/start`);
      const whileRunning = await refused(a, 'POST', exportPath, {});
      expect(whileRunning).toMatchObject({ status: 409, code: 'guest_not_stopped' });
      expect(whileRunning.message).toContain('running');
      await ok(a, 'POST', `${guest}/stop`);

      // The export: once, the same uri on a retry; the guest may not start while it runs.
      const exported = await ok<DiskExportResult>(a, 'POST', exportPath, {});
      expect(exported.nbdUri).toMatch(tuning.diskExportUri ?? /^\S+$/);
      expect(await ok<DiskExportResult>(a, 'POST', exportPath)).toEqual(exported);
      expect(await refused(a, 'POST', `${guest}/start`)).toMatchObject({
        status: 409,
        code: 'disk_exported',
      });
      expect(await refused(a, 'POST', exportPath, { listenAddress: '127.0.0.2' })).toMatchObject({
        status: 409,
        code: 'export_conflict',
      });

      // The destination: defined with the same spec; no import while its guest runs there.
      await ok(b, 'PUT', guest, spec);
      expect(await refused(b, 'GET', importPath)).toMatchObject({ status: 404, code: 'import_not_found' });
      expect(await refused(b, 'POST', importPath, { nbdUri: 'file:///etc/passwd' })).toMatchObject({
        status: 400,
        code: 'invalid_request',
      });
      expect(await refused(b, 'POST', `${guest}/disks/root/import`, exported)).toMatchObject({
        status: 409,
        code: 'disk_not_local',
      });
      await ok(b, 'POST', `${guest}/start`);
      expect(await refused(b, 'POST', importPath, exported)).toMatchObject({
        status: 409,
        code: 'guest_not_stopped',
      });
      await ok(b, 'POST', `${guest}/stop`);

      // The copy: a retry answers with the same copy (same start), which ends completed.
      const requestedAt = Date.now();
      const first = await ok<DiskCopyStatus>(b, 'POST', importPath, exported);
      expect(['copying', 'completed']).toContain(first.status);
      expect(first.totalBytes).toBe(64 * MIB);
      expect(first.error).toBeNull();
      expect(first.startedAt).toBeGreaterThanOrEqual(requestedAt);
      const again = await ok<DiskCopyStatus>(b, 'POST', importPath, exported);
      expect(again.startedAt).toBe(first.startedAt);
      const seen: DiskCopyStatus[] = [];
      const startsWhileCopying: { status: number; code: string | undefined }[] = [];
      const done = await eventually(
        'the import to end',
        async () => {
          const status = await ok<DiskCopyStatus>(b, 'GET', importPath);
          seen.push(status);
          if (status.status !== 'copying') return status;
          const start = await refused(b, 'POST', `${guest}/start`);
          // The copy may have ended in between: then the guest started, which the test undoes.
          if (start.status === 200) await ok(b, 'POST', `${guest}/stop`);
          else startsWhileCopying.push({ status: start.status, code: start.code });
          return undefined;
        },
        tuning.migrationTimeoutMs,
        50,
      );
      expect(done.status, done.error ?? '').toBe('completed');
      expect(done.copiedBytes).toBe(64 * MIB);
      expect(done.totalBytes).toBe(64 * MIB);
      expect(done.startedAt).toBe(first.startedAt);
      expect(done.finishedAt).toBeGreaterThanOrEqual(done.startedAt!);
      for (const [index, status] of seen.entries()) {
        expect(status.copiedBytes).toBeLessThanOrEqual(status.totalBytes);
        if (index > 0) expect(status.copiedBytes).toBeGreaterThanOrEqual(seen[index - 1]!.copiedBytes);
      }
      for (const start of startsWhileCopying) {
        expect(start).toEqual({ status: 409, code: 'disk_import_in_progress' });
      }
      console.log(
        `[${name}] disk copy of 64 MiB: ${done.finishedAt! - done.startedAt!} ms (${seen.length} status polls)`,
      );
      expect(await ok<DiskCopyStatus>(b, 'POST', importPath, exported)).toEqual(done);

      // The export ends (once); the copy is the destination's.
      expect(await ok(a, 'DELETE', exportPath)).toEqual({ stopped: true });
      expect(await ok(a, 'DELETE', exportPath)).toEqual({ stopped: false });
      expect(await ok(a, 'DELETE', `/v1/guests/no-such-guest/disks/data/export`)).toEqual({ stopped: false });
      await tuning.diskCopy?.compare(a, b, spec.id, 'data');
      await ok(b, 'POST', `${guest}/start`);
      expect((await ok<GuestState>(b, 'GET', guest)).status).toBe('running');
      expect(await refused(b, 'POST', importPath, exported)).toMatchObject({
        status: 409,
        code: 'guest_not_stopped',
      });
      expect(await ok(a, 'DELETE', guest)).toEqual({ destroyed: true });
      expect(await ok(b, 'DELETE', guest)).toEqual({ destroyed: true });
    });
  });
}
