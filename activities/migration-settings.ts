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

/** The cluster config, the policy that selects the guest (and why), and the settings that result. */
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
  return { selection, settings: resolveSettings(config, selection.policy) };
}
