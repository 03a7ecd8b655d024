/*
 * Sources read (reference only):
 * - Cloudpods, github.com/yunionio/cloudpods @ 2de295222d1c:
 *   pkg/compute/models/hosts.go PerformAutoMigrateOnHostDown: enabling auto_migrate_on_host_shutdown without
 *   auto_migrate_on_host_down in the same request is a 400 "must enable auto_migrate_on_host_down at same
 *   time"; each flag is "enable"/"disable" host metadata (pkg/apis/compute/host_const.go HOSTMETA_*), and
 *   climc's host-auto-migrate-on-host-down defaults both options to "disable"
 *   (pkg/mcclient/options/compute/host.go HostAutoMigrateOnHostDownOptions).
 *   hosts.go OnHostDown: a host the agent took offline (graceful) is no failure unless
 *   auto_migrate_on_host_shutdown is on; else it records host_down and calls migrateOnHostDown, which acts
 *   only when auto_migrate_on_host_down is on; MigrateSharedStorageServers skips guests in
 *   isNotRunningStatus (ready, suspend; pkg/compute/models/guest_actions.go), and validateForBatchMigrate
 *   in rescue mode refuses "cannot rescue guest %s with local storage"; the moved ones go in one
 *   host_down_auto_migrate record (pkg/apis/notify/event.go ActionHostDown, ActionHostDownAutoMigrate).
 * - oVirt, github.com/oVirt/ovirt-engine @ 0111fc63036b:
 *   backend/manager/modules/common/.../businessentities/MigrateOnErrorOptions.java (NO, YES, HA_ONLY);
 *   Cluster.java (default YES); SetNonOperationalVdsCommand.java (YES: migrateAllVms, HA_ONLY: HA only,
 *   otherwise none); MaintenanceVdsCommand.java migrateAllVms (HA = vm.isAutoStartup(); a VM already
 *   MigratingFrom is skipped); webadmin ApplicationConstants.properties: "Resilience Policy", "Migrate
 *   Virtual Machines", "Migrate Only Highly Available Virtual Machines", "Do Not Migrate Virtual Machines".
 */
import { describe, expect, it } from 'vitest';
import type { DiskSpec } from '../../domain/agent-contract.ts';
import { guestStatuses, type GuestStatus } from '../../domain/guest-status.ts';
import {
  decideHostDownRescues,
  DOWN_OFF_NEEDS_SHUTDOWN_OFF,
  hostFlagChanges,
  resiliencePolicies,
  SHUTDOWN_NEEDS_DOWN,
  validateHostFlags,
  type HostDownGuest,
  type HostDownInput,
} from '../../domain/host-down.ts';
import { hostDownAutoMigrateEvent, hostDownEvent, hostFlagsUpdatedEvent } from '../../domain/host-events.ts';

const shared = (id: string): DiskSpec => ({ id, sizeMb: 1024, storage: 'shared', cache: 'none' });
const local = (id: string): DiskSpec => ({ id, sizeMb: 1024, storage: 'local', cache: 'none' });

const guest = (over: Partial<HostDownGuest> = {}): HostDownGuest => ({
  id: `id-${over.name ?? 'g'}`,
  name: 'g',
  status: 'running',
  highlyAvailable: false,
  disks: [shared('d0')],
  ...over,
});

const ON = { autoMigrateOnHostDown: true, autoMigrateOnHostShutdown: true };
const DOWN_ONLY = { autoMigrateOnHostDown: true, autoMigrateOnHostShutdown: false };
const OFF = { autoMigrateOnHostDown: false, autoMigrateOnHostShutdown: false };

const decide = (over: Partial<HostDownInput>) =>
  decideHostDownRescues({ policy: 'all', cause: 'down', host: ON, guests: [guest()], ...over });
const only = (over: Partial<HostDownInput>) => {
  const [decision, ...rest] = decide(over);
  expect(rest).toEqual([]);
  return decision!;
};

describe('resilience policies', () => {
  it("are oVirt's three, all first (oVirt's default YES)", () => {
    expect(resiliencePolicies).toEqual(['all', 'ha-only', 'none']);
  });
});

describe('decideHostDownRescues: guest statuses', () => {
  const rescued: GuestStatus[] = ['running', 'error'];
  const staying: Record<string, string> = {
    ready: 'guest was stopped (ready)',
    stopped: 'guest was stopped (stopped)',
    migrating: 'migrating: its migration workflow settles it',
    creating: 'creating: its creation workflow settles it',
    deleting: 'deleting: its deletion settles it',
  };

  it('covers every status there is', () => {
    expect([...rescued, ...Object.keys(staying)].sort()).toEqual([...guestStatuses].sort());
  });

  it.each(rescued)('%s: rescued (Cloudpods moves every guest that was not stopped)', (status) => {
    const d = only({ guests: [guest({ status })] });
    expect(d.move).toBe(true);
    expect(d.reason).toBe(
      `policy all; ${status} with every disk on shared storage: restarted elsewhere in rescue mode`,
    );
  });

  it.each(Object.entries(staying))('%s: stays (%s)', (status, reason) => {
    for (const policy of ['all', 'ha-only'] as const) {
      const d = only({ policy, guests: [guest({ status: status as GuestStatus, highlyAvailable: true })] });
      expect(d).toMatchObject({ move: false, reason });
    }
  });

  it('a stopped guest stays for being stopped, not for its local disk or for not being HA', () => {
    const d = only({ policy: 'ha-only', guests: [guest({ status: 'ready', disks: [local('d1')] })] });
    expect(d.reason).toBe('guest was stopped (ready)');
  });
});

describe('decideHostDownRescues: resilience policy', () => {
  it.each([
    ['all', false, true],
    ['all', true, true],
    ['ha-only', true, true],
    ['ha-only', false, false],
    ['none', true, false],
    ['none', false, false],
  ] as const)('policy %s, highly available %s: moves %s', (policy, highlyAvailable, move) => {
    expect(only({ policy, guests: [guest({ highlyAvailable })] }).move).toBe(move);
  });

  it('says why for ha-only both ways', () => {
    expect(only({ policy: 'ha-only', guests: [guest({ highlyAvailable: false })] }).reason).toBe(
      'policy ha-only and guest is not highly available',
    );
    expect(only({ policy: 'ha-only', guests: [guest({ highlyAvailable: true })] }).reason).toBe(
      'policy ha-only and guest is highly available; running with every disk on shared storage: restarted elsewhere in rescue mode',
    );
  });

  it('none keeps every guest, naming the policy', () => {
    expect(only({ policy: 'none', guests: [guest({ highlyAvailable: true })] }).reason).toBe(
      'cluster resilience policy is none (do not migrate virtual machines)',
    );
  });
});

describe('decideHostDownRescues: host flags and cause', () => {
  const flagOff = 'host flag auto_migrate_on_host_down is off';
  const graceful =
    'a graceful agent shutdown is not a host failure: host flag auto_migrate_on_host_shutdown is off';

  it.each([
    ['down', ON, null],
    ['down', DOWN_ONLY, null],
    ['down', OFF, flagOff],
    ['shutdown', ON, null],
    ['shutdown', DOWN_ONLY, graceful],
    ['shutdown', OFF, graceful],
    // Not reachable through the API (shutdown requires down), but stored flags decide safely anyway.
    ['down', { autoMigrateOnHostDown: false, autoMigrateOnHostShutdown: true }, flagOff],
    ['shutdown', { autoMigrateOnHostDown: false, autoMigrateOnHostShutdown: true }, flagOff],
  ] as const)('cause %s with %j: %s', (cause, host, reason) => {
    for (const policy of resiliencePolicies) {
      const d = only({ cause, host, policy, guests: [guest({ highlyAvailable: true })] });
      if (reason === null) expect(d.move).toBe(policy !== 'none');
      else expect(d).toMatchObject({ move: false, reason });
    }
  });

  it('the host-level reason wins over every guest-level one', () => {
    const guests = [guest({ name: 'a', status: 'ready' }), guest({ name: 'b', disks: [local('d1')] })];
    expect(decide({ host: OFF, guests }).map((d) => d.reason)).toEqual([flagOff, flagOff]);
  });
});

describe('decideHostDownRescues: disks', () => {
  it('refuses a rescue with a local disk, naming it', () => {
    expect(only({ guests: [guest({ disks: [shared('d0'), local('d1')] })] })).toMatchObject({
      move: false,
      reason: 'local disk d1 cannot be rescued',
    });
  });

  it('names every local disk', () => {
    expect(only({ guests: [guest({ disks: [local('d1'), shared('d0'), local('d2')] })] }).reason).toBe(
      'local disks d1, d2 cannot be rescued',
    );
  });

  it('a guest without disks has nothing left on the lost host and is rescued', () => {
    expect(only({ guests: [guest({ disks: [] })] }).move).toBe(true);
  });

  it('ha-only: not being HA is said before the local disk', () => {
    expect(only({ policy: 'ha-only', guests: [guest({ disks: [local('d1')] })] }).reason).toBe(
      'policy ha-only and guest is not highly available',
    );
  });
});

describe('decideHostDownRescues: one decision per guest', () => {
  it('in the order given, with ids and names', () => {
    const guests = [
      guest({ id: '1', name: 'web', status: 'running', highlyAvailable: true }),
      guest({ id: '2', name: 'batch', status: 'running' }),
      guest({ id: '3', name: 'db', status: 'running', highlyAvailable: true, disks: [local('data')] }),
      guest({ id: '4', name: 'old', status: 'ready', highlyAvailable: true }),
      guest({ id: '5', name: 'moving', status: 'migrating', highlyAvailable: true }),
    ];
    expect(decide({ policy: 'ha-only', guests })).toEqual([
      {
        guestId: '1',
        name: 'web',
        move: true,
        reason:
          'policy ha-only and guest is highly available; running with every disk on shared storage: restarted elsewhere in rescue mode',
      },
      {
        guestId: '2',
        name: 'batch',
        move: false,
        reason: 'policy ha-only and guest is not highly available',
      },
      { guestId: '3', name: 'db', move: false, reason: 'local disk data cannot be rescued' },
      { guestId: '4', name: 'old', move: false, reason: 'guest was stopped (ready)' },
      { guestId: '5', name: 'moving', move: false, reason: 'migrating: its migration workflow settles it' },
    ]);
  });

  it('no guests, no decisions', () => {
    expect(decide({ guests: [] })).toEqual([]);
  });
});

describe('validateHostFlags', () => {
  it.each([
    [OFF, { autoMigrateOnHostDown: true }, DOWN_ONLY],
    [OFF, { autoMigrateOnHostDown: true, autoMigrateOnHostShutdown: true }, ON],
    [DOWN_ONLY, { autoMigrateOnHostShutdown: true }, ON],
    [ON, { autoMigrateOnHostShutdown: false }, DOWN_ONLY],
    [ON, { autoMigrateOnHostDown: false, autoMigrateOnHostShutdown: false }, OFF],
    [DOWN_ONLY, { autoMigrateOnHostDown: false }, OFF],
    [ON, {}, ON],
    [OFF, {}, OFF],
    [ON, { autoMigrateOnHostDown: true, autoMigrateOnHostShutdown: true }, ON],
  ])('%j + %j = %j', (current, patch, flags) => {
    expect(validateHostFlags(current, patch)).toEqual({ ok: true, flags });
  });

  it("refuses shutdown without down in Cloudpods' words, naming the flag to enable", () => {
    expect(SHUTDOWN_NEEDS_DOWN).toBe('must enable auto_migrate_on_host_down at same time');
    for (const patch of [
      { autoMigrateOnHostShutdown: true },
      { autoMigrateOnHostShutdown: true, autoMigrateOnHostDown: false },
    ]) {
      expect(validateHostFlags(OFF, patch)).toEqual({
        ok: false,
        field: 'auto_migrate_on_host_down',
        message: SHUTDOWN_NEEDS_DOWN,
      });
    }
    expect(validateHostFlags(ON, { autoMigrateOnHostShutdown: true, autoMigrateOnHostDown: false })).toEqual({
      ok: false,
      field: 'auto_migrate_on_host_down',
      message: SHUTDOWN_NEEDS_DOWN,
    });
  });

  it('refuses turning down off under shutdown, naming the flag to disable with it', () => {
    expect(validateHostFlags(ON, { autoMigrateOnHostDown: false })).toEqual({
      ok: false,
      field: 'auto_migrate_on_host_shutdown',
      message: DOWN_OFF_NEEDS_SHUTDOWN_OFF,
    });
    expect(DOWN_OFF_NEEDS_SHUTDOWN_OFF).toMatch(/^must disable auto_migrate_on_host_shutdown at same time/);
  });

  it('does not change the flags it was given', () => {
    const current = { ...DOWN_ONLY };
    validateHostFlags(current, { autoMigrateOnHostShutdown: true });
    expect(current).toEqual(DOWN_ONLY);
  });
});

describe('hostFlagChanges', () => {
  it("lists what changed in Cloudpods' names and words", () => {
    expect(hostFlagChanges(OFF, ON)).toEqual([
      { field: 'auto_migrate_on_host_down', from: 'disable', to: 'enable' },
      { field: 'auto_migrate_on_host_shutdown', from: 'disable', to: 'enable' },
    ]);
    expect(hostFlagChanges(ON, DOWN_ONLY)).toEqual([
      { field: 'auto_migrate_on_host_shutdown', from: 'enable', to: 'disable' },
    ]);
    expect(hostFlagChanges(ON, ON)).toEqual([]);
  });
});

describe('host events', () => {
  const host = { id: 'h-1', name: 'h1' };

  it('update: what changed', () => {
    expect(hostFlagsUpdatedEvent(host, hostFlagChanges(OFF, DOWN_ONLY))).toEqual({
      subjectKind: 'host',
      subjectId: 'h-1',
      type: 'update',
      level: 'info',
      message: 'host h1: auto_migrate_on_host_down disable -> enable',
      data: { auto_migrate_on_host_down: 'enable' },
    });
  });

  it('host_down when confirmed, by what; host_down_unconfirmed when not', () => {
    const evidence = ['etcd lease expired', 'agent does not answer'];
    expect(hostDownEvent(host, { confirmed: true, cause: 'down', evidence })).toMatchObject({
      type: 'host_down',
      level: 'error',
      message: 'host h1: it is down (etcd lease expired; agent does not answer)',
      data: { confirmed: true, cause: 'down', evidence },
    });
    expect(
      hostDownEvent(host, { confirmed: true, cause: 'shutdown', evidence: ['agent stopped gracefully'] }),
    ).toMatchObject({
      type: 'host_down',
      message: 'host h1: its agent shut down gracefully (agent stopped gracefully)',
    });
    expect(
      hostDownEvent(host, {
        confirmed: false,
        cause: 'down',
        evidence: ['etcd lease expired', 'agent answers'],
      }),
    ).toMatchObject({
      type: 'host_down_unconfirmed',
      level: 'warning',
      message: 'host h1 is not confirmed down (etcd lease expired; agent answers): nothing moves',
    });
  });

  it('host_down_auto_migrate: who moves, who stays and why', () => {
    const decisions = decideHostDownRescues({
      policy: 'all',
      cause: 'down',
      host: DOWN_ONLY,
      guests: [
        guest({ id: '1', name: 'web' }),
        guest({ id: '2', name: 'db', disks: [local('data')] }),
        guest({ id: '3', name: 'old', status: 'ready' }),
      ],
    });
    const event = hostDownAutoMigrateEvent(host, { policy: 'all', cause: 'down', decisions });
    expect(event).toMatchObject({ subjectKind: 'host', subjectId: 'h-1', type: 'host_down_auto_migrate' });
    expect(event.message).toBe(
      'host h1 (policy all, down): rescuing 1 of 3: web; staying: db (local disk data cannot be rescued), old (guest was stopped (ready))',
    );
    expect(event.data).toEqual({
      policy: 'all',
      cause: 'down',
      moving: [{ id: '1', name: 'web', reason: decisions[0]!.reason }],
      staying: [
        { id: '2', name: 'db', reason: 'local disk data cannot be rescued' },
        { id: '3', name: 'old', reason: 'guest was stopped (ready)' },
      ],
    });
  });

  it('host_down_auto_migrate when nobody moves, and with no guests', () => {
    const decisions = decideHostDownRescues({
      policy: 'all',
      cause: 'shutdown',
      host: DOWN_ONLY,
      guests: [guest({ name: 'web' })],
    });
    expect(hostDownAutoMigrateEvent(host, { policy: 'all', cause: 'shutdown', decisions }).message).toBe(
      'host h1 (policy all, shutdown): no guest moves; staying: web (a graceful agent shutdown is not a host failure: host flag auto_migrate_on_host_shutdown is off)',
    );
    expect(hostDownAutoMigrateEvent(host, { policy: 'none', cause: 'down', decisions: [] }).message).toBe(
      'host h1 (policy none, down): no guests to rescue',
    );
  });
});
