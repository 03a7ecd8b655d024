import { createHash } from 'node:crypto';
import type { Db } from '../db/client.ts';
import { listHosts } from '../db/inventory.ts';
import type { Host } from '../db/schema.ts';

/** A host as its cluster's agents know it: where to reach it, and the addresses its migrations come from. */
export interface Peer {
  id: string;
  name: string;
  address: string;
  migrationAddress: string | null;
  agentUrl: string;
}

export interface PeerList {
  /** Names this very list: an agent that holds it is not sent it again (it sends `x-peers-revision`). */
  revision: string;
  peers: Peer[];
}

export const PEERS_REVISION_HEADER = 'x-peers-revision';

/** How long one API process reuses the list it read: a fleet's registrations read it once, not once each. */
export const PEER_LIST_TTL_MS = 2_000;

export const peerOf = ({ id, name, address, migrationAddress, agentUrl }: Peer): Peer => ({
  id,
  name,
  address,
  migrationAddress,
  agentUrl,
});

/** The same hosts at the same addresses give the same revision, whatever order they were read in. */
export function peerListRevision(peers: readonly Peer[]): string {
  const canonical = [...peers].map(peerOf).sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  return createHash('sha256').update(JSON.stringify(canonical)).digest('base64url').slice(0, 22);
}

export const samePeer = (a: Peer, b: Peer): boolean =>
  a.name === b.name &&
  a.address === b.address &&
  a.migrationAddress === b.migrationAddress &&
  a.agentUrl === b.agentUrl;

/** The cluster's registered hosts: the only ones its agents migrate to or from (agent/peers.ts). */
export async function clusterPeers(db: Db, clusterId: string): Promise<Peer[]> {
  return (await listHosts(db)).filter((host) => host.clusterId === clusterId).map(peerOf);
}

/**
 * Each cluster's peer list, read at most once per PEER_LIST_TTL_MS by this process, and read again at once when
 * a registration here changed a host's entry. Another API process's change reaches the list within the TTL; an
 * agent that meets a host it does not know yet registers again (agent/peers.ts), so it catches up.
 */
export class PeerListCache {
  private readonly lists = new Map<string, { list: PeerList; readAtMs: number }>();

  constructor(
    private readonly db: Db,
    private readonly now: () => number = Date.now,
  ) {}

  async get(clusterId: string): Promise<PeerList> {
    const cached = this.lists.get(clusterId);
    if (cached && this.now() - cached.readAtMs < PEER_LIST_TTL_MS) return cached.list;
    const peers = await clusterPeers(this.db, clusterId);
    const list = { revision: peerListRevision(peers), peers };
    this.lists.set(clusterId, { list, readAtMs: this.now() });
    return list;
  }

  /** The list with this host as just stored: read again if its entry is missing or differs. */
  async withHost(host: Host): Promise<PeerList> {
    const list = await this.get(host.clusterId);
    const known = list.peers.find((peer) => peer.id === host.id);
    if (known && samePeer(known, peerOf(host))) return list;
    this.lists.delete(host.clusterId);
    return this.get(host.clusterId);
  }
}
