import { describe, expect, it } from 'vitest';
import type {
  GuestRunState,
  MigrationStatusName,
  StartMigrationRequest,
} from '../../../domain/agent-contract.ts';
import { AgentFailure } from '../../../agent/errors.ts';
import {
  assertMemoryAvailable,
  assertMigrationParameters,
  assertSafeSpec,
  blockTarget,
  canonicalJson,
  decideCancel,
  decideCleanup,
  decideDefine,
  decidePause,
  decidePostCopy,
  decidePrepareIncoming,
  decideResume,
  decideStart,
  decideStartMigration,
  decideStop,
  hostPort,
  type MigrationRecord,
  nbdUri,
  parseNbdUri,
  tcpUriHost,
} from '../../../agent/guest-rules.ts';
import { testSpec } from '../../agent/specs.ts';

function failure(run: () => unknown): AgentFailure {
  try {
    run();
  } catch (error) {
    if (error instanceof AgentFailure) return error;
    throw error;
  }
  throw new Error('expected an AgentFailure');
}

const spec = testSpec({ id: 'g-1' });
const record = (overrides: Partial<MigrationRecord> = {}): MigrationRecord => ({
  migrationId: 'm-1',
  role: 'source',
  uri: 'tcp:127.0.0.1:1',
  postCopy: false,
  nbdUri: null,
  final: null,
  ...overrides,
});
const start = (migrationId = 'm-1'): StartMigrationRequest => ({
  migrationId,
  uri: 'tcp:127.0.0.1:1',
  downtimeLimitMs: 300,
  maxBandwidthBytes: 0,
  autoConverge: false,
  postCopy: false,
  tls: false,
});

describe('guest rules', () => {
  it('compares specs whatever the key order', () => {
    expect(canonicalJson({ b: 1, a: [{ d: 2, c: 3 }] })).toBe('{"a":[{"c":3,"d":2}],"b":1}');
    expect(decideDefine(null, spec)).toBe('create');
    expect(decideDefine(JSON.parse(JSON.stringify(spec)), spec)).toBe('unchanged');
    expect(failure(() => decideDefine({ ...spec, vcpus: 2 }, spec)).status).toBe(409);
  });

  it('prepares an incoming guest once per migration', () => {
    const request = { migrationId: 'm-1', spec, listenAddress: '127.0.0.1', tls: false, postCopy: false };
    expect(decidePrepareIncoming(null, request)).toBe('prepare');
    const incoming = { spec, migration: record({ role: 'destination' }), alive: true };
    expect(decidePrepareIncoming(incoming, request)).toBe('existing');
    expect(decidePrepareIncoming({ ...incoming, alive: false }, request)).toBe('restart');
    expect(failure(() => decidePrepareIncoming({ ...incoming, migration: null }, request)).code).toBe(
      'guest_exists',
    );
    expect(failure(() => decidePrepareIncoming(incoming, { ...request, migrationId: 'm-2' })).status).toBe(
      409,
    );
    expect(failure(() => decidePrepareIncoming(incoming, { ...request, postCopy: true })).field).toBe(
      'postCopy',
    );
  });

  it('starts an incoming guest ahead of its network and makes it listen once an address comes', () => {
    const launch = { migrationId: 'm-1', spec, tls: false, postCopy: false };
    const listen = { ...launch, listenAddress: '127.0.0.1' };
    expect(decidePrepareIncoming(null, launch)).toBe('prepare');
    const launched = { spec, migration: record({ role: 'destination', uri: '' }), alive: true };
    expect(decidePrepareIncoming(launched, launch)).toBe('existing');
    expect(decidePrepareIncoming(launched, listen)).toBe('listen');
    expect(decidePrepareIncoming({ ...launched, alive: false }, listen)).toBe('restart');
    // Listening already: a late launch or a second address changes nothing.
    const listening = { ...launched, migration: record({ role: 'destination' }) };
    expect(decidePrepareIncoming(listening, launch)).toBe('existing');
    expect(decidePrepareIncoming(listening, { ...listen, listenAddress: '10.0.0.1' })).toBe('existing');
    expect(failure(() => decidePrepareIncoming(launched, { ...listen, tls: true })).field).toBe('tls');
  });

  it('starts a migration once per id and one at a time', () => {
    expect(decideStartMigration({ record: null, status: 'none' }, 'running', start())).toBe('start');
    expect(decideStartMigration({ record: record(), status: 'active' }, 'running', start())).toBe('current');
    expect(decideStartMigration({ record: record(), status: 'completed' }, 'paused', start())).toBe(
      'current',
    );
    expect(
      failure(() => decideStartMigration({ record: record(), status: 'active' }, 'running', start('m-2')))
        .code,
    ).toBe('migration_in_progress');
    expect(decideStartMigration({ record: record(), status: 'failed' }, 'running', start('m-2'))).toBe(
      'start',
    );
    expect(
      failure(() => decideStartMigration({ record: record(), status: 'completed' }, 'paused', start('m-2')))
        .code,
    ).toBe('already_migrated');
    expect(
      failure(() => decideStartMigration({ record: null, status: 'none' }, 'stopped', start())).code,
    ).toBe('guest_not_running');
  });

  it('cleans a source only after completion', () => {
    expect(decideCleanup(null, { migrationId: 'm-1', role: 'source' })).toBe('nothing');
    const source = (status: MigrationStatusName) => ({
      record: record(),
      status,
      runState: 'paused' as const,
    });
    expect(decideCleanup(source('completed'), { migrationId: 'm-1', role: 'source' })).toBe('destroy');
    expect(failure(() => decideCleanup(source('active'), { migrationId: 'm-1', role: 'source' })).code).toBe(
      'migration_not_completed',
    );
    expect(
      failure(() => decideCleanup(source('completed'), { migrationId: 'm-9', role: 'source' })).code,
    ).toBe('migration_mismatch');
    expect(
      failure(() =>
        decideCleanup(
          { record: null, status: 'none', runState: 'running' },
          { migrationId: 'm-1', role: 'source' },
        ),
      ).code,
    ).toBe('migration_mismatch');
  });

  it('destroys a destination that only receives, and one that runs only in the state the caller saw', () => {
    const destination = (runState: GuestRunState, status: MigrationStatusName = 'completed') => ({
      record: record({ role: 'destination' }),
      status,
      runState,
    });
    const cleanup = (expectState?: GuestRunState) => ({
      migrationId: 'm-1',
      role: 'destination' as const,
      ...(expectState === undefined ? {} : { expectState }),
    });
    expect(decideCleanup(null, cleanup('running'))).toBe('nothing');
    for (const state of ['incoming', 'defined', 'stopped', 'crashed'] as const) {
      expect(decideCleanup(destination(state, 'active'), cleanup()), state).toBe('destroy');
    }
    for (const state of ['running', 'paused'] as const) {
      const refused = failure(() => decideCleanup(destination(state), cleanup()));
      expect([refused.status, refused.code, refused.field]).toEqual([409, 'guest_runs_here', 'expectState']);
      expect(refused.message).toContain("migration 'm-1'");
      expect(refused.message).toContain(state);
      expect(decideCleanup(destination(state), cleanup(state))).toBe('destroy');
    }
    expect(decideCleanup(destination('crashed'), cleanup('crashed'))).toBe('destroy');
    const stale = failure(() => decideCleanup(destination('running'), cleanup('incoming')));
    expect([stale.status, stale.code, stale.field]).toEqual([409, 'state_changed', 'expectState']);
    expect(stale.message).toContain('expected incoming, it is running');
    expect(failure(() => decideCleanup(destination('stopped'), cleanup('running'))).code).toBe(
      'state_changed',
    );
    expect(
      failure(() => decideCleanup(destination('incoming'), { ...cleanup(), migrationId: 'm-9' })).code,
    ).toBe('migration_mismatch');
  });

  describe('resume', () => {
    const view = (
      status: MigrationStatusName,
      overrides: Partial<MigrationRecord> | null = {},
      postCopyStarted = false,
    ) => ({ record: overrides === null ? null : record(overrides), status, postCopyStarted });

    it('is a no-op for a running guest and refused for one that is not paused', () => {
      expect(decideResume('g', 'running', view('completed'))).toBe('already');
      expect(decideResume('g', 'running', view('postcopy-active', {}, true), { migrationId: 'x' })).toBe(
        'already',
      );
      for (const state of ['defined', 'stopped', 'incoming', 'crashed'] as const) {
        expect(failure(() => decideResume('g', state, view('none', null))).code, state).toBe(
          'guest_not_paused',
        );
      }
      expect(decideResume('g', 'paused', view('none', null))).toBe('resume');
      expect(decideResume('g', 'paused', view('none', null), {})).toBe('resume');
    });

    it('compares the migration and its status the caller names', () => {
      const mismatch = failure(() => decideResume('g', 'paused', view('active'), { migrationId: 'm-2' }));
      expect([mismatch.status, mismatch.code, mismatch.field]).toEqual([
        409,
        'migration_mismatch',
        'migrationId',
      ]);
      expect(
        failure(() => decideResume('g', 'paused', view('none', null), { migrationId: 'm-1' })).code,
      ).toBe('migration_mismatch');
      const changed = failure(() =>
        decideResume('g', 'paused', view('completed'), {
          migrationId: 'm-1',
          expectMigrationStatus: 'active',
        }),
      );
      expect([changed.status, changed.code, changed.field]).toEqual([
        409,
        'migration_state_changed',
        'expectMigrationStatus',
      ]);
      expect(changed.message).toContain('expected active, QEMU reports completed');
      expect(
        failure(() => decideResume('g', 'paused', view('none', null), { expectMigrationStatus: 'completed' }))
          .code,
      ).toBe('migration_state_changed');
      expect(
        decideResume('g', 'paused', view('active'), { migrationId: 'm-1', expectMigrationStatus: 'active' }),
      ).toBe('resume');
      // A destination's guest resumes (it arrived paused), naming its migration or not.
      expect(decideResume('g', 'paused', view('completed', { role: 'destination' }))).toBe('resume');
      expect(
        decideResume('g', 'paused', view('completed', { role: 'destination' }), {
          migrationId: 'm-1',
          expectMigrationStatus: 'completed',
        }),
      ).toBe('resume');
    });

    it('never runs a source again once post-copy began', () => {
      const full = (status: MigrationStatusName) => ({ migrationId: 'm-1', expectMigrationStatus: status });
      for (const status of ['postcopy-active', 'completed', 'failed', 'cancelled'] as const) {
        const refused = failure(() =>
          decideResume('g', 'paused', view(status, { postCopy: true }, true), full(status)),
        );
        expect([refused.status, refused.code], status).toEqual([409, 'postcopy_started']);
        expect(refused.message).toContain("'m-1'");
        expect(failure(() => decideResume('g', 'paused', view(status, { postCopy: true }, true))).code).toBe(
          'postcopy_started',
        );
      }
      // Seen as postcopy-active before the record knew.
      expect(
        failure(() => decideResume('g', 'paused', view('postcopy-active', { postCopy: true }))).code,
      ).toBe('postcopy_started');
    });

    it('runs a completed pre-copy source again only when the call names the migration and completed', () => {
      for (const request of [{}, { migrationId: 'm-1' }, { expectMigrationStatus: 'completed' as const }]) {
        const refused = failure(() => decideResume('g', 'paused', view('completed'), request));
        expect([refused.status, refused.code], JSON.stringify(request)).toEqual([409, 'source_migrated']);
        expect(refused.message).toContain("'m-1'");
      }
      expect(
        decideResume('g', 'paused', view('completed'), {
          migrationId: 'm-1',
          expectMigrationStatus: 'completed',
        }),
      ).toBe('resume');
    });

    it('resumes a source whose migration did not hand the guest over', () => {
      for (const status of ['none', 'setup', 'active', 'cancelling', 'cancelled', 'failed'] as const) {
        expect(decideResume('g', 'paused', view(status)), status).toBe('resume');
      }
    });
  });

  it('starts a guest that is not paused, incoming, or handed over', () => {
    const none = { record: null, status: 'none' as const, postCopyStarted: false };
    expect(decideStart('g', 'running', none)).toBe('already');
    for (const state of ['defined', 'stopped', 'crashed'] as const)
      expect(decideStart('g', state, none)).toBe('start');
    for (const state of ['paused', 'incoming'] as const) {
      const refused = failure(() => decideStart('g', state, none));
      expect(refused.code).toBe('guest_not_startable');
      expect(refused.message).toContain('use resume or wait for the migration');
    }
    expect(
      failure(() => decideStart('g', 'stopped', { ...none, record: record(), status: 'completed' })).code,
    ).toBe('source_migrated');
    expect(
      failure(() =>
        decideStart('g', 'stopped', { record: record(), status: 'failed', postCopyStarted: true }),
      ).code,
    ).toBe('postcopy_started');
    expect(decideStart('g', 'stopped', { ...none, record: record(), status: 'failed' })).toBe('start');
    expect(
      decideStart('g', 'stopped', { ...none, record: record({ role: 'destination' }), status: 'completed' }),
    ).toBe('start');
  });

  it('stops a guest only outside a migration in flight', () => {
    for (const status of ['none', 'completed', 'failed', 'cancelled'] as const)
      expect(decideStop('g', status)).toBe('stop');
    for (const status of ['setup', 'active', 'postcopy-active', 'cancelling'] as const) {
      expect(failure(() => decideStop('g', status)).code).toBe('migration_in_progress');
    }
  });

  it('switches an active post-copy-enabled migration to post-copy once its disks are in step', () => {
    const current = (
      status: MigrationStatusName,
      overrides: Partial<MigrationRecord> | null = {},
      mirroring = false,
    ) => ({
      record: overrides === null ? null : record({ postCopy: true, ...overrides }),
      status,
      mirroring,
    });
    expect(decidePostCopy('g', current('active'))).toBe('switch');
    for (const status of ['postcopy-active', 'completed', 'failed', 'cancelled'] as const) {
      expect(decidePostCopy('g', current(status))).toBe('current');
    }
    expect(decidePostCopy('g', current('cancelling'))).toBe('current');
    expect(failure(() => decidePostCopy('g', current('none', null))).code).toBe('no_active_migration');
    expect(failure(() => decidePostCopy('g', current('active', { role: 'destination' }))).code).toBe(
      'no_active_migration',
    );
    expect(failure(() => decidePostCopy('g', current('none'))).code).toBe('no_active_migration');
    expect(failure(() => decidePostCopy('g', current('active', { postCopy: false }))).field).toBe('postCopy');
    expect(failure(() => decidePostCopy('g', current('setup', { postCopy: false }, true))).code).toBe(
      'postcopy_not_enabled',
    );
    expect(failure(() => decidePostCopy('g', current('setup', {}, true))).code).toBe('disk_mirror_not_ready');
  });

  it('cancels only an outgoing migration in flight, never in post-copy', () => {
    const view = (
      status: MigrationStatusName,
      overrides: Partial<MigrationRecord> | null = {},
      postCopyStarted = false,
    ) => ({
      record: overrides === null ? null : record(overrides),
      status,
      postCopyStarted,
    });
    for (const status of ['setup', 'active', 'cancelling'] as const)
      expect(decideCancel(view(status))).toBe('cancel');
    for (const status of ['none', 'completed', 'failed', 'cancelled'] as const) {
      expect(decideCancel(view(status))).toBe('current');
    }
    expect(decideCancel(view('active', null))).toBe('current');
    expect(decideCancel(view('active', { role: 'destination' }))).toBe('current');
    expect(failure(() => decideCancel(view('postcopy-active'))).code).toBe('postcopy_active');
    expect(failure(() => decideCancel(view('active', {}, true))).code).toBe('postcopy_active');
  });

  it('refuses unsafe names', () => {
    expect(failure(() => assertSafeSpec({ ...spec, id: '../etc' })).field).toBe('id');
    expect(
      failure(() =>
        assertSafeSpec(testSpec({ disks: [{ id: 'a/b', sizeMb: 1, storage: 'shared', cache: 'none' }] })),
      ).field,
    ).toBe('disks.0.id');
  });

  it('brackets IPv6 literals in QEMU URIs', () => {
    expect(hostPort('127.0.0.1', 4444)).toBe('127.0.0.1:4444');
    expect(hostPort('::1', 4444)).toBe('[::1]:4444');
    expect(nbdUri('::1', 10809)).toBe('nbd:[::1]:10809');
    expect(parseNbdUri('nbd:[::1]:10809')).toEqual({ host: '::1', port: 10809 });
    expect(parseNbdUri('nbd:127.0.0.1:4')).toEqual({ host: '127.0.0.1', port: 4 });
    for (const bad of ['nbd:127.0.0.1', 'nbd:h:0', 'nbd:h:70000', 'tcp:h:1', 'nbd:h:1:exportname=x']) {
      expect(parseNbdUri(bad), bad).toBeNull();
    }
    expect(tcpUriHost('tcp:[::1]:1')).toBe('::1');
    expect(tcpUriHost('tcp:localhost:1')).toBe('localhost');
    expect(tcpUriHost('unix:/x')).toBeNull();
  });

  it('asks a guest with local disks for the nbdUri of its destination', () => {
    const local = testSpec({
      disks: [
        { id: 'root', sizeMb: 10, storage: 'shared', cache: 'none' },
        { id: 'data', sizeMb: 10, storage: 'local', cache: 'none' },
      ],
    });
    const missing = failure(() => blockTarget(local, start()));
    expect([missing.status, missing.code, missing.field]).toEqual([400, 'nbd_uri_required', 'nbdUri']);
    expect(missing.message).toContain('data');
    expect(failure(() => blockTarget(local, { ...start(), nbdUri: 'nbd:x' })).field).toBe('nbdUri');
    expect(blockTarget(local, { ...start(), nbdUri: 'nbd:127.0.0.1:5000' })).toEqual({
      host: '127.0.0.1',
      port: 5000,
    });
    expect(blockTarget(spec, { ...start(), nbdUri: 'anything' })).toBeNull();
  });

  it('refuses TLS or post-copy other than prepared, and throttle steps QEMU refuses', () => {
    const request = { migrationId: 'm-1', spec, listenAddress: '127.0.0.1', tls: true, postCopy: false };
    const incoming = { spec, migration: record({ role: 'destination' }), alive: true };
    expect(failure(() => decidePrepareIncoming(incoming, request)).code).toBe('tls_conflict');
    const tls = { ...incoming, migration: record({ role: 'destination', tls: true }) };
    expect(decidePrepareIncoming(tls, request)).toBe('existing');
    expect(failure(() => assertMigrationParameters({ cpuThrottleIncrement: 100 })).field).toBe(
      'cpuThrottleIncrement',
    );
    expect(() => assertMigrationParameters({ cpuThrottleIncrement: 99 })).not.toThrow();
  });

  it('admits a guest only into the memory the host has left, saying the numbers', () => {
    const big = testSpec({ id: 'big', memoryMb: 700 });
    const holders = [
      { id: 'a', memoryMb: 200 },
      { id: 'b', memoryMb: 200 },
      { id: 'big', memoryMb: 700 },
    ];
    expect(() => assertMemoryAvailable(1100, holders, big)).not.toThrow();
    const refused = failure(() => assertMemoryAvailable(1000, holders, big, 'spec.memoryMb'));
    expect([refused.status, refused.code, refused.field]).toEqual([
      409,
      'insufficient_memory',
      'spec.memoryMb',
    ]);
    expect(refused.message).toContain('needs 700 MiB');
    expect(refused.message).toContain('600 MiB free');
    expect(refused.message).toContain('1000 MiB in all, 400 MiB held by 2 other guest(s)');
  });

  it('pauses a running guest once', () => {
    expect(decidePause('g', 'running')).toBe('pause');
    expect(decidePause('g', 'paused')).toBe('already');
    for (const state of ['defined', 'stopped', 'incoming', 'crashed'] as const) {
      expect(failure(() => decidePause('g', state)).code).toBe('guest_not_running');
    }
  });
});
