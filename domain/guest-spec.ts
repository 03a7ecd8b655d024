import type { GuestSpec } from './agent-contract.ts';

export interface GuestRecord {
  id: string;
  name: string;
  vcpus: number;
  memoryMb: number;
  disks: GuestSpec['disks'];
  networks: GuestSpec['networks'];
  dirtyRateMibs: number;
  fillMb: number;
  diskTest: boolean;
}

/** What a host agent is told to run for an inventory guest; the same spec on both ends of a migration. */
export function guestSpecOf(guest: GuestRecord): GuestSpec {
  return {
    id: guest.id,
    name: guest.name,
    vcpus: guest.vcpus,
    memoryMb: guest.memoryMb,
    disks: guest.disks,
    networks: guest.networks,
    dirtyRateMibs: guest.dirtyRateMibs,
    fillMb: guest.fillMb,
    ...(guest.diskTest ? { diskTest: true } : {}),
  };
}
