import type { GuestSnapshot, HostSnapshot } from '../../domain/prechecks.ts';

export function host(overrides: Partial<HostSnapshot> = {}): HostSnapshot {
  return {
    id: overrides.name ?? 'h1',
    name: 'h1',
    enabled: true,
    online: true,
    maintenance: false,
    cpuModel: 'Intel(R) Xeon(R) CPU E5-2650 v2 @ 2.60GHz',
    microcode: '0x42e',
    kernel: '6.1.0-31-cloud-amd64',
    qemuVersion: '7.2.22',
    cpus: 8,
    memoryMb: 16384,
    networks: ['default'],
    sharedStoragePath: '/shared',
    committedMemoryMb: 0,
    committedVcpus: 0,
    ...overrides,
  };
}

export function guest(overrides: Partial<GuestSnapshot> = {}): GuestSnapshot {
  return {
    id: 'g1',
    name: 'vm1',
    status: 'running',
    project: 'p1',
    vcpus: 2,
    memoryMb: 2048,
    disks: [{ id: 'disk0', sizeMb: 1024, storage: 'shared', cache: 'none' }],
    networks: [{ name: 'default', mac: '52:54:00:00:00:01' }],
    passthroughDevices: [],
    ...overrides,
  };
}
