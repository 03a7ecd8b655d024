import type { Db } from '../db/client.ts';
import { findGuest, listHosts } from '../db/inventory.ts';
import { hostLoads } from '../db/migration-store.ts';
import type { Host } from '../db/schema.ts';
import type { GuestSpec } from '../domain/agent-contract.ts';
import { guestSpecOf } from '../domain/guest-spec.ts';
import type { GuestSnapshot, HostSnapshot } from '../domain/prechecks.ts';

/** A host as the migration workflow sees it: the pre-check facts plus how to reach it. */
export interface MigrationHost extends HostSnapshot {
  clusterId: string;
  agentUrl: string;
  address: string;
  migrationAddress: string | null;
}

export interface PlacementContext {
  guest: GuestSnapshot;
  spec: GuestSpec;
  source: MigrationHost | undefined;
  hosts: MigrationHost[];
}

function toMigrationHost(
  host: Host,
  online: Set<string>,
  load: { committedMemoryMb: number; committedVcpus: number },
) {
  return {
    id: host.id,
    name: host.name,
    enabled: host.enabled,
    online: online.has(host.id),
    maintenance: host.status === 'maintenance',
    cpuModel: host.cpuModel,
    microcode: host.microcode,
    kernel: host.kernel,
    qemuVersion: host.qemuVersion,
    cpus: host.cpus,
    memoryMb: host.memoryMb,
    networks: host.networks,
    sharedStoragePath: host.sharedStoragePath,
    committedMemoryMb: load.committedMemoryMb,
    committedVcpus: load.committedVcpus,
    clusterId: host.clusterId,
    agentUrl: host.agentUrl,
    address: host.address,
    migrationAddress: host.migrationAddress,
  } satisfies MigrationHost;
}

/** One consistent read of everything the pre-checks and the scheduler decide on. */
export async function readPlacementContext(
  db: Db,
  liveness: { onlineHostIds(): Promise<Set<string>> },
  guestId: string,
): Promise<PlacementContext | undefined> {
  const guest = await findGuest(db, guestId);
  if (!guest) return undefined;
  const [rows, online] = await Promise.all([listHosts(db), liveness.onlineHostIds()]);
  const loads = await hostLoads(
    db,
    rows.map((h) => h.id),
  );
  const hosts = rows.map((h) =>
    toMigrationHost(h, online, loads.get(h.id) ?? { committedMemoryMb: 0, committedVcpus: 0 }),
  );
  return {
    guest: {
      id: guest.id,
      name: guest.name,
      status: guest.status,
      project: guest.project,
      vcpus: guest.vcpus,
      memoryMb: guest.memoryMb,
      disks: guest.disks,
      networks: guest.networks,
      passthroughDevices: guest.passthroughDevices,
    },
    spec: guestSpecOf(guest),
    source: hosts.find((h) => h.id === guest.hostId),
    hosts,
  };
}
