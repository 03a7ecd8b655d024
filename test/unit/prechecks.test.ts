import { describe, expect, it } from 'vitest';
import {
  callerMayAct,
  cpuCompatible,
  destinationChecks,
  destinationHasCapacity,
  destinationReachesNetworks,
  destinationReachesStorage,
  diskCacheIsNone,
  guestAndSourceChecks,
  guestIsRunning,
  hostIsUsable,
  hostsDiffer,
  kernelCompatible,
  qemuCompatible,
  noPassthroughDevices,
} from '../../domain/prechecks.ts';
import { compareVersions } from '../../domain/versions.ts';
import { guest, host } from './fixtures.ts';

const noSkips = { skipCpuCheck: false, skipKernelCheck: false };

describe('pre-checks', () => {
  it('lets an unscoped operator or admin act, a scoped one only on its projects, a viewer never', () => {
    expect(callerMayAct({ role: 'admin' }, guest()).ok).toBe(true);
    expect(callerMayAct({ role: 'operator' }, guest()).ok).toBe(true);
    expect(callerMayAct({ role: 'operator', projects: ['p0', 'p1'] }, guest()).ok).toBe(true);
    const denied = callerMayAct({ role: 'operator', projects: ['p2'] }, guest());
    expect(denied).toMatchObject({
      ok: false,
      name: 'caller_may_act',
      values: { guestProject: 'p1', callerProjects: ['p2'] },
    });
    expect(denied.message).toContain("belongs to project 'p1'");
    expect(callerMayAct({ role: 'viewer' }, guest())).toMatchObject({ ok: false, name: 'caller_may_act' });
  });

  it('needs a running guest', () => {
    expect(guestIsRunning(guest()).ok).toBe(true);
    expect(guestIsRunning(guest({ status: 'stopped' }))).toMatchObject({
      ok: false,
      values: { status: 'stopped' },
    });
  });

  it("takes a guest marked migrating by the migration being checked as running, anyone else's mark not", () => {
    // A workflow task that did not complete runs the migration's local steps again, after the guest was marked.
    expect(guestIsRunning(guest({ status: 'migrating', markedByThisMigration: true }))).toMatchObject({
      ok: true,
      values: { status: 'migrating', markedByThisMigration: true },
    });
    expect(guestIsRunning(guest({ status: 'migrating' }))).toMatchObject({
      ok: false,
      message: 'guest vm1 is migrating, not running',
    });
    // The flag speaks only of a migrating mark.
    expect(guestIsRunning(guest({ status: 'stopped', markedByThisMigration: true })).ok).toBe(false);
  });

  it('needs hosts that exist, are enabled and online; destination not in maintenance', () => {
    expect(hostIsUsable('source', host()).ok).toBe(true);
    expect(hostIsUsable('source', undefined)).toMatchObject({ ok: false, name: 'source_host_usable' });
    expect(hostIsUsable('destination', host({ enabled: false })).message).toContain('disabled');
    expect(hostIsUsable('destination', host({ online: false })).message).toContain('offline');
    expect(hostIsUsable('destination', host({ maintenance: true })).message).toContain('maintenance');
    expect(hostIsUsable('source', host({ maintenance: true })).ok).toBe(true);
  });

  it('refuses the source as destination', () => {
    expect(hostsDiffer(host({ id: 'a' }), host({ id: 'b' })).ok).toBe(true);
    expect(hostsDiffer(host({ id: 'a' }), host({ id: 'a' })).ok).toBe(false);
  });

  it('counts committed memory and vCPUs, including reservations', () => {
    expect(
      destinationHasCapacity(guest({ memoryMb: 2048 }), host({ memoryMb: 4096, committedMemoryMb: 2048 })).ok,
    ).toBe(true);
    const short = destinationHasCapacity(
      guest({ memoryMb: 2048 }),
      host({ memoryMb: 4096, committedMemoryMb: 2049 }),
    );
    expect(short).toMatchObject({ ok: false, values: { freeMemoryMb: 2047, neededMemoryMb: 2048 } });
    const noCpu = destinationHasCapacity(guest({ vcpus: 2 }), host({ cpus: 1, committedVcpus: 3 }));
    expect(noCpu).toMatchObject({ ok: false, values: { freeVcpus: 1, neededVcpus: 2 } });
  });

  it('compares CPU model and microcode unless skipped', () => {
    expect(cpuCompatible(host(), host(), noSkips).ok).toBe(true);
    expect(cpuCompatible(host(), host({ cpuModel: 'AMD EPYC' }), noSkips).message).toContain(
      'CPU model differs',
    );
    expect(cpuCompatible(host(), host({ microcode: '0x1' }), noSkips).message).toContain('microcode differs');
    expect(cpuCompatible(host(), host({ cpuModel: 'AMD EPYC' }), { ...noSkips, skipCpuCheck: true }).ok).toBe(
      true,
    );
  });

  it('allows the same or a newer QEMU only, whatever skip_kernel_check says', () => {
    expect(qemuCompatible(host(), host({ qemuVersion: '8.0.0' })).ok).toBe(true);
    expect(qemuCompatible(host(), host()).ok).toBe(true);
    const older = qemuCompatible(host(), host({ qemuVersion: '7.1.0' }));
    expect(older.ok).toBe(false);
    expect(older.message).toContain('QEMU 7.1.0 is older');
    // skip_kernel_check is not an input of this check: the two are separate pre-checks.
    const all = destinationChecks(guest(), host({ id: 'a' }), host({ id: 'b', qemuVersion: '6.2.0' }), {
      ...noSkips,
      skipKernelCheck: true,
    });
    expect(all.filter((c) => !c.ok).map((c) => c.name)).toEqual(['qemu_compatible']);
    // A guest that boots afresh (cold, rescue) takes no running state along: any QEMU will do.
    const cold = destinationChecks(guest(), host({ id: 'a' }), host({ id: 'b', qemuVersion: '6.2.0' }), {
      skipCpuCheck: true,
      skipKernelCheck: true,
      bootsAfresh: true,
    });
    expect(cold.every((c) => c.ok)).toBe(true);
  });

  // Cloudpods, yunionio/cloudpods pkg/scheduler/algorithm/predicates/guest/migrate_predicate.go
  // (MigratePredicate.Execute, "target host kernel check"): unless skip_kernel_check, a host whose
  // `kernel_version` differs from the source's (pkg/compute/models/guest_actions.go puts the source host's
  // kernel_version in TargetHostKernel) is excluded: equality of the whole string, newer included.
  it.each([
    ['6.1.0-31-cloud-amd64', false, true],
    ['6.1.0-40-cloud-amd64', false, false],
    ['6.12.0-1-amd64', false, false],
    ['5.10.0-20-amd64', false, false],
    ['5.10.0-20-amd64', true, true],
    ['6.12.0-1-amd64', true, true],
  ])('destination kernel %s, skip_kernel_check %s: passes %s (as Cloudpods)', (kernel, skip, ok) => {
    const result = kernelCompatible(host(), host({ kernel }), { ...noSkips, skipKernelCheck: skip });
    expect(result.ok).toBe(ok);
    if (!ok) expect(result.message).toContain('use skip_kernel_check');
  });

  it('refuses passed-through devices and cache modes other than none', () => {
    expect(noPassthroughDevices(guest()).ok).toBe(true);
    expect(noPassthroughDevices(guest({ passthroughDevices: ['0000:3b:00.0'] })).message).toContain(
      '0000:3b:00.0',
    );
    expect(diskCacheIsNone(guest()).ok).toBe(true);
    const cached = guest({ disks: [{ id: 'd1', sizeMb: 1, storage: 'shared', cache: 'writeback' }] });
    expect(diskCacheIsNone(cached)).toMatchObject({
      ok: false,
      values: { disks: [{ disk: 'd1', cache: 'writeback' }] },
    });
  });

  it('needs the destination to reach every network and the shared storage', () => {
    const twoNets = guest({
      networks: [
        { name: 'default', mac: '52:54:00:00:00:01' },
        { name: 'vlan20', mac: '52:54:00:00:00:02' },
      ],
    });
    expect(destinationReachesNetworks(twoNets, host()).values.missing).toEqual(['vlan20']);
    expect(destinationReachesNetworks(twoNets, host({ networks: ['default', 'vlan20'] })).ok).toBe(true);
    expect(destinationReachesStorage(guest(), host(), host({ sharedStoragePath: '/other' })).ok).toBe(false);
    const localOnly = guest({ disks: [{ id: 'd', sizeMb: 1, storage: 'local', cache: 'none' }] });
    expect(destinationReachesStorage(localOnly, host(), host({ sharedStoragePath: '/other' })).ok).toBe(true);
  });

  it('groups guest/source checks and destination checks, stopping early on an unusable destination', () => {
    expect(
      guestAndSourceChecks({
        caller: { role: 'admin' },
        guest: guest(),
        source: host(),
        options: noSkips,
      }).every((c) => c.ok),
    ).toBe(true);
    expect(destinationChecks(guest(), host({ id: 'a' }), undefined, noSkips)).toHaveLength(1);
    const all = destinationChecks(guest(), host({ id: 'a' }), host({ id: 'b' }), noSkips);
    expect(all.map((c) => c.name)).toEqual([
      'destination_host_usable',
      'hosts_differ',
      'destination_capacity',
      'cpu_compatible',
      'qemu_compatible',
      'kernel_compatible',
      'destination_networks',
      'destination_storage',
    ]);
    expect(all.every((c) => c.ok)).toBe(true);
  });
});

describe('compareVersions', () => {
  it.each([
    ['7.2.22 (Debian 1:7.2+dfsg-7+deb12u18)', '7.2.22', 0],
    ['8.0.0', '7.2.22', 1],
    ['6.1.0-31-cloud-amd64', '6.1.0-40-cloud-amd64', 0],
    ['5.10', '6.1', -1],
    ['', '1.0', -1],
  ])('%s vs %s (first 3 parts)', (a, b, sign) => {
    expect(Math.sign(compareVersions(a, b, 3))).toBe(sign);
  });
});
