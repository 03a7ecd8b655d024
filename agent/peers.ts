import { z } from 'zod';
import { agentEndpoint, canonicalHost, type MigrationTarget, sameEndpoint } from './migration-uri.ts';

/**
 * The hosts this agent may migrate to and from, copy disks with and probe: the cluster's registered
 * hosts, as the API's registration answer lists them (`peers`), plus those the agent's options name
 * (agents that do not register: tests, benchmarks). Nothing else is a peer: an agent that neither
 * registers nor was given peers refuses every migration uri, disk import and network probe.
 */

export const peerHostSchema = z.object({
  id: z.string().min(1),
  name: z.string().min(1),
  address: z.string().min(1),
  migrationAddress: z.string().min(1).nullable(),
  agentUrl: z.string().min(1),
});
export type PeerHost = z.infer<typeof peerHostSchema>;

/** The revision naming a registration answer's peer list (sent back so an unchanged list is not sent again). */
export function peersRevisionOf(hostView: unknown): string | null {
  const revision = (hostView as { peersRevision?: unknown } | null)?.peersRevision;
  return typeof revision === 'string' && revision.length > 0 ? revision : null;
}

/**
 * The peer lists this process holds, by revision: the hosts of a sim fleet (agent/fleet.ts) share one copy of
 * their cluster's list instead of one each (a thousand hosts each holding a thousand peers).
 */
const sharedLists = new Map<string, readonly PeerHost[]>();
const SHARED_LISTS_KEPT = 4;

function sharedList(revision: string | null, peers: PeerHost[]): readonly PeerHost[] {
  if (revision === null) return peers;
  const held = sharedLists.get(revision);
  if (held) return held;
  sharedLists.set(revision, peers);
  if (sharedLists.size > SHARED_LISTS_KEPT) sharedLists.delete(sharedLists.keys().next().value!);
  return peers;
}

/** The peers of a registration answer; null when it lists none (unchanged, or an older API): keep what we had. */
export function peersFromRegistration(hostView: unknown): PeerHost[] | null {
  const listed = (hostView as { peers?: unknown } | null)?.peers;
  if (!Array.isArray(listed)) return null;
  return listed.flatMap((item) => {
    const parsed = peerHostSchema.safeParse(item);
    return parsed.success ? [parsed.data] : [];
  });
}

/** Whether a host (canonical) is one of the peer's addresses. */
export function peerHasAddress(peer: PeerHost, host: string): boolean {
  return [peer.address, peer.migrationAddress].some(
    (address) => address !== null && canonicalHost(address) === host,
  );
}

/** The peers that own a target's endpoint: by address for QEMU's streams, by agent URL for the sim's. */
export function peersOwning(target: MigrationTarget, peers: readonly PeerHost[]): PeerHost[] {
  return peers.filter((peer) => {
    if (target.owner === 'address') return peerHasAddress(peer, target.endpoint.host);
    const agent = agentEndpoint(peer.agentUrl);
    return agent !== null && sameEndpoint(agent, target.endpoint);
  });
}

/** The peers that have this address (network probes). */
export function peersWithAddress(host: string, peers: readonly PeerHost[]): PeerHost[] {
  return peers.filter((peer) => peerHasAddress(peer, host));
}

export interface PeerStoreOptions {
  /** Peers from the agent's options, read at each look (agents started together may list each other). */
  configured?: () => readonly PeerHost[];
  /** Registers again now; the answer's peers arrive through follow(). Absent: the agent does not register. */
  refresh?: () => Promise<void>;
  /** At most one refresh per this long (default 5 s): a caller cannot make the agent hammer the API. */
  refreshIntervalMs?: number;
  now?: () => number;
}

export class PeerStore {
  private registered: readonly PeerHost[] = [];
  private registeredRevision: string | null = null;
  private refreshing: Promise<void> | null = null;
  private lastRefreshMs = Number.NEGATIVE_INFINITY;

  constructor(private readonly options: PeerStoreOptions = {}) {}

  /** Where the peers come from, for refusals. */
  source(): string {
    if (this.options.refresh !== undefined) return 'the hosts registered with the API';
    return this.options.configured === undefined
      ? 'none: this agent does not register with an API and was given no peers'
      : "the peers in this agent's options (it does not register with an API)";
  }

  /** From a registration answer: its peers, or none when the API saw this agent holds that revision already. */
  follow(hostView: unknown): void {
    const peers = peersFromRegistration(hostView);
    const revision = peersRevisionOf(hostView);
    if (peers !== null) {
      this.registered = sharedList(revision, peers);
      this.registeredRevision = revision;
    } else if (revision !== this.registeredRevision) {
      // An answer without the list for a revision we do not hold: ask for the whole list next time.
      this.registeredRevision = null;
    }
  }

  /** The revision of the registered peers held, for the next registration (null: send the list). */
  revision(): string | null {
    return this.registeredRevision;
  }

  list(): PeerHost[] {
    return [...this.registered, ...(this.options.configured?.() ?? [])];
  }

  /**
   * The peers `select` picks; when it picks none, the agent registers again (a host registered a
   * moment ago) and looks once more. Refreshes are at least refreshIntervalMs apart: a caller waits
   * for the next one rather than causing more.
   */
  async find(select: (peers: readonly PeerHost[]) => PeerHost[]): Promise<PeerHost[]> {
    const found = select(this.list());
    if (found.length > 0 || this.options.refresh === undefined) return found;
    await this.refresh();
    return select(this.list());
  }

  private refresh(): Promise<void> {
    this.refreshing ??= (async () => {
      const now = this.options.now ?? Date.now;
      const waitMs = this.lastRefreshMs + (this.options.refreshIntervalMs ?? 5_000) - now();
      if (waitMs > 0) await new Promise((resolve) => setTimeout(resolve, waitMs));
      this.lastRefreshMs = now();
      await this.options.refresh!().catch(() => undefined);
    })().finally(() => {
      this.refreshing = null;
    });
    return this.refreshing;
  }
}
