export interface NetworkEndpoint {
  name: string;
  address: string;
  migrationAddress: string | null;
}

/** What the source could reach on the destination; null = not probed (no migration network on both ends). */
export interface Reachability {
  migration: boolean | null;
  management: boolean;
}

export type MigrationNetworkChoice =
  | { ok: true; network: 'migration' | 'management'; address: string; warning: string | null }
  | { ok: false; reason: string };

/** Whether both ends carry a dedicated migration network, so it is worth probing. */
export const hasMigrationNetwork = (source: NetworkEndpoint, destination: NetworkEndpoint) =>
  source.migrationAddress !== null && destination.migrationAddress !== null;

/**
 * oVirt/KubeVirt: the dedicated migration network when both hosts have one and the source reaches it;
 * else the management network, with a warning saying why; else the migration cannot run.
 */
export function chooseMigrationNetwork(
  source: NetworkEndpoint,
  destination: NetworkEndpoint,
  reach: Reachability,
): MigrationNetworkChoice {
  const configured = hasMigrationNetwork(source, destination);
  if (configured && reach.migration === true && destination.migrationAddress !== null) {
    return { ok: true, network: 'migration', address: destination.migrationAddress, warning: null };
  }
  const why = !configured
    ? source.migrationAddress === null && destination.migrationAddress === null
      ? null
      : `${source.migrationAddress === null ? source.name : destination.name} has no migration network address`
    : `${source.name} cannot reach ${destination.name}'s migration address ${destination.migrationAddress}`;
  if (reach.management) {
    return {
      ok: true,
      network: 'management',
      address: destination.address,
      warning: why === null ? null : `${why}; using the management address ${destination.address}`,
    };
  }
  return {
    ok: false,
    reason: `${source.name} cannot reach ${destination.name} on the management address ${destination.address}${why ? `, and ${why}` : ''}`,
  };
}
