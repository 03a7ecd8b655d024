import { describe, expect, it } from 'vitest';
import type { StartMigrationRequest } from '../../domain/agent-contract.ts';
import { AgentFailure } from '../../agent/errors.ts';
import {
  assertMemoryAvailable,
  assertMigrationParameters,
  assertSafeSpec,
  blockTarget,
  canonicalJson,
  decideCleanup,
  decideDefine,
  decidePause,
  decidePrepareIncoming,
  decideStartMigration,
  hostPort,
  type MigrationRecord,
  nbdUri,
  parseNbdUri,
  tcpUriHost,
} from '../../agent/guest-rules.ts';
import { testSpec } from './specs.ts';

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

  it('cleans a source only after completion and a destination always', () => {
    expect(decideCleanup(null, { migrationId: 'm-1', role: 'source' })).toBe('nothing');
    expect(
      decideCleanup({ record: record(), status: 'completed' }, { migrationId: 'm-1', role: 'source' }),
    ).toBe('destroy');
    expect(
      failure(() =>
        decideCleanup({ record: record(), status: 'active' }, { migrationId: 'm-1', role: 'source' }),
      ).code,
    ).toBe('migration_not_completed');
    const destination = { record: record({ role: 'destination' }), status: 'active' as const };
    expect(decideCleanup(destination, { migrationId: 'm-1', role: 'destination' })).toBe('destroy');
    expect(failure(() => decideCleanup(destination, { migrationId: 'm-9', role: 'destination' })).code).toBe(
      'migration_mismatch',
    );
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
