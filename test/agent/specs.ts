import { randomUUID } from 'node:crypto';
import type { GuestSpec } from '../../domain/agent-contract.ts';

let macCounter = 0x10;

/** A small test guest with one shared disk and one NIC; ids and MACs differ per call. */
export function testSpec(overrides: Partial<GuestSpec> = {}): GuestSpec {
  const id = overrides.id ?? `g-${randomUUID()}`;
  const mac = `52:54:00:00:00:${(macCounter++ % 256).toString(16).padStart(2, '0')}`;
  return {
    id,
    name: `guest-${id.slice(2, 10)}`,
    vcpus: 1,
    memoryMb: 128,
    disks: [{ id: 'root', sizeMb: 64, storage: 'shared', cache: 'none' }],
    networks: [{ name: 'default', mac }],
    dirtyRateMibs: 0,
    fillMb: 0,
    ...overrides,
  };
}
