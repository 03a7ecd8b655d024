import type { Db } from '../db/client.ts';
import { ensureCluster, findGuest, findHost } from '../db/inventory.ts';
import { clusterMigrationConfig, listMigrationPolicies } from '../db/settings-store.ts';
import {
  resolveSettings,
  selectPolicy,
  type PolicySelection,
  type ResolvedMigrationSettings,
} from '../domain/migration-policy.ts';

export interface GuestMigrationSettings {
  selection: PolicySelection;
  settings: ResolvedMigrationSettings;
}

/**
 * The cluster config, the policy that selects the guest (and why), and the settings that result, auto
 * bandwidth from the link speed the guest's (source) host last reported.
 */
export async function guestMigrationSettings(
  db: Db,
  guestId: string,
): Promise<GuestMigrationSettings | undefined> {
  const guest = await findGuest(db, guestId);
  if (!guest) return undefined;
  const host = await findHost(db, guest.hostId);
  const clusterId = host?.clusterId ?? (await ensureCluster(db));
  const [config, policies] = await Promise.all([
    clusterMigrationConfig(db, clusterId),
    listMigrationPolicies(db),
  ]);
  const selection = selectPolicy(policies, guest.labels, guest.projectLabels);
  // The guest's host is the source of its next migration: auto bandwidth is a share of that host's link.
  const linkMbps = host?.migrationLinkMbps ?? undefined;
  return { selection, settings: resolveSettings(config, selection.policy, linkMbps) };
}
