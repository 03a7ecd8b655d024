import { describe, expect, it } from 'vitest';
import {
  coldMigrationChecks,
  coldPlacementOptions,
  DEFAULT_COLD_MIGRATE_OPTIONS,
  disksSurviveTheSource,
  guestMayMoveCold,
  holdsLiveCopy,
  sourceIsDown,
  statusAfterColdMigration,
} from '../../domain/cold-migration.ts';
import { fencingWaitMs, MIN_FENCING_MARGIN_MS } from '../../domain/host-down-timing.ts';
import { guest, host } from './fixtures.ts';

const local = { id: 'root', sizeMb: 64, storage: 'local' as const, cache: 'none' as const };
const shared = { id: 'data', sizeMb: 64, storage: 'shared' as const, cache: 'none' as const };

// Cloudpods' server-migrate (seed 001): cold migration moves a guest "in the shut-down state"; rescue mode is for
// a host that is completely down, "all disks must reside on shared storage"; the guest is `ready` afterwards,
// running with --auto-start.
describe('guestMayMoveCold', () => {
  it.each(['ready', 'stopped'])('a %s guest moves cold', (status) => {
    expect(guestMayMoveCold(guest({ status }), false).ok).toBe(true);
  });
  it.each(['running', 'migrating', 'creating', 'error'])('a %s guest does not move cold', (status) => {
    const result = guestMayMoveCold(guest({ status }), false);
    expect(result).toMatchObject({ name: 'guest_stopped', ok: false });
    expect(result.message).toContain(`is ${status}, not stopped`);
  });
  it.each(['running', 'ready', 'error', 'stopped'])('a %s guest may be rescued', (status) => {
    expect(guestMayMoveCold(guest({ status }), true).ok).toBe(true);
  });
  it.each(['creating', 'deleting', 'migrating'])('a %s guest is owned by another operation', (status) => {
    expect(guestMayMoveCold(guest({ status }), true)).toMatchObject({ name: 'guest_rescuable', ok: false });
  });
});

describe('sourceIsDown', () => {
  const silent = { agentAnswers: false, guestLiveThere: false };
  it('is down with no lease and a silent agent', () => {
    expect(sourceIsDown(host({ online: false }), silent)).toMatchObject({
      ok: true,
      message: 'source host h1 is down',
    });
  });
  it('is down with no lease and an agent that fenced the guest', () => {
    const result = sourceIsDown(host({ online: false }), { agentAnswers: true, guestLiveThere: false });
    expect(result.ok).toBe(true);
    expect(result.message).toContain('fenced');
  });
  it('is up while it holds its lease, whatever the agent says', () => {
    const result = sourceIsDown(host({ online: true }), silent);
    expect(result.ok).toBe(false);
    expect(result.message).toContain('holds its etcd lease');
  });
  it('is up while its agent still runs the guest', () => {
    const result = sourceIsDown(host({ online: false }), { agentAnswers: true, guestLiveThere: true });
    expect(result.ok).toBe(false);
    expect(result.message).toContain('still runs the guest');
  });
  it('refuses a source that does not exist', () => {
    expect(sourceIsDown(undefined, silent).ok).toBe(false);
  });
});

describe('holdsLiveCopy', () => {
  it.each([
    ['running', true],
    ['paused', true],
    ['incoming', true],
    ['stopped', false],
    ['defined', false],
    ['crashed', false],
    [null, false],
  ])('%s -> %s', (state, live) => expect(holdsLiveCopy(state)).toBe(live));
});

describe('disksSurviveTheSource', () => {
  it('passes shared disks in both modes', () => {
    expect(disksSurviveTheSource({ disks: [shared] }, true).ok).toBe(true);
    expect(disksSurviveTheSource({ disks: [shared] }, false).ok).toBe(true);
  });
  it('refuses a rescue with a local disk, naming it', () => {
    const result = disksSurviveTheSource({ disks: [shared, local] }, true);
    expect(result.ok).toBe(false);
    expect(result.message).toContain('disk root');
    expect(result.message).toContain('rescue mode needs every disk on shared storage');
  });
  it('lets a cold migration copy a local disk, saying so', () => {
    const result = disksSurviveTheSource({ disks: [local] }, false);
    expect(result.ok).toBe(true);
    expect(result.message).toBe('local disk root is copied to the destination');
  });
});

describe('coldMigrationChecks', () => {
  const admin = { role: 'admin' as const };
  it('checks caller, status, source, disks and devices in that order', () => {
    const checks = coldMigrationChecks({
      caller: admin,
      guest: guest({ status: 'ready' }),
      source: host(),
      options: DEFAULT_COLD_MIGRATE_OPTIONS,
      reach: { agentAnswers: true, guestLiveThere: false },
    });
    expect(checks.map((c) => c.name)).toEqual([
      'caller_may_act',
      'guest_stopped',
      'source_host_usable',
      'disks_shared',
      'no_passthrough_devices',
    ]);
    expect(checks.every((c) => c.ok)).toBe(true);
  });
  it('in rescue mode asks for a down source instead of a usable one', () => {
    const checks = coldMigrationChecks({
      caller: admin,
      guest: guest({ status: 'running' }),
      source: host({ online: false }),
      options: { ...DEFAULT_COLD_MIGRATE_OPTIONS, rescueMode: true },
      reach: { agentAnswers: false, guestLiveThere: false },
    });
    expect(checks.map((c) => c.name)).toContain('source_host_down');
    expect(checks.every((c) => c.ok)).toBe(true);
  });
  it('refuses another project and a passed-through device', () => {
    const checks = coldMigrationChecks({
      caller: { role: 'operator', projects: ['other'] },
      guest: guest({ status: 'ready', passthroughDevices: ['0000:01:00.0'] }),
      source: host(),
      options: DEFAULT_COLD_MIGRATE_OPTIONS,
      reach: { agentAnswers: true, guestLiveThere: false },
    });
    expect(checks.filter((c) => !c.ok).map((c) => c.name)).toEqual([
      'caller_may_act',
      'no_passthrough_devices',
    ]);
  });
});

describe('placement and arrival', () => {
  it('places a cold guest without CPU, kernel or QEMU compatibility (it boots afresh)', () => {
    expect(coldPlacementOptions({ preferHost: 'h2', autoStart: false, rescueMode: true })).toMatchObject({
      preferHost: 'h2',
      skipCpuCheck: true,
      skipKernelCheck: true,
      bootsAfresh: true,
    });
  });
  it('arrives ready, or running when started', () => {
    expect(statusAfterColdMigration(false)).toBe('ready');
    expect(statusAfterColdMigration(true)).toBe('running');
  });
  it('never waits less than the floor for a fence', () => {
    expect(fencingWaitMs({ fencingMarginMs: 0 })).toBe(MIN_FENCING_MARGIN_MS);
    expect(fencingWaitMs({ fencingMarginMs: 5_000 })).toBe(5_000);
  });
});
