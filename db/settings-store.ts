import { asc, eq, gt } from 'drizzle-orm';
import { DEFAULT_MIGRATION_CONFIG, type ClusterMigrationConfig } from '../domain/migration-config.ts';
import type { MigrationPolicy } from '../domain/migration-policy.ts';
import type { Db } from './client.ts';
import { migrationConfigs, migrationPolicies } from './schema.ts';

export async function clusterMigrationConfig(db: Db, clusterId: string): Promise<ClusterMigrationConfig> {
  const [row] = await db.select().from(migrationConfigs).where(eq(migrationConfigs.clusterId, clusterId));
  // Fields added to the config after a row was written take their defaults.
  return { ...DEFAULT_MIGRATION_CONFIG, ...(row?.config ?? {}) };
}

export async function putClusterMigrationConfig(db: Db, clusterId: string, config: ClusterMigrationConfig) {
  await db
    .insert(migrationConfigs)
    .values({ clusterId, config })
    .onConflictDoUpdate({ target: migrationConfigs.clusterId, set: { config, updatedAt: new Date() } });
}

/** Policies by name (the key: no tie to break); a page is the `limit` after the name `after`. */
export async function listMigrationPolicies(
  db: Db,
  page: { after?: string | null; limit?: number } = {},
): Promise<MigrationPolicy[]> {
  const ordered = db
    .select()
    .from(migrationPolicies)
    .where(page.after ? gt(migrationPolicies.name, page.after) : undefined)
    .orderBy(asc(migrationPolicies.name));
  const rows = await (page.limit === undefined ? ordered : ordered.limit(page.limit));
  return rows.map((r) => r.policy);
}

export async function findMigrationPolicy(db: Db, name: string): Promise<MigrationPolicy | undefined> {
  const [row] = await db.select().from(migrationPolicies).where(eq(migrationPolicies.name, name));
  return row?.policy;
}

/** 'created' or 'exists' (nothing written) for a create; an update overwrites. */
export async function insertMigrationPolicy(db: Db, policy: MigrationPolicy): Promise<'created' | 'exists'> {
  const inserted = await db
    .insert(migrationPolicies)
    .values({ name: policy.name, policy })
    .onConflictDoNothing({ target: migrationPolicies.name })
    .returning({ name: migrationPolicies.name });
  return inserted.length > 0 ? 'created' : 'exists';
}

export async function updateMigrationPolicy(db: Db, policy: MigrationPolicy): Promise<boolean> {
  const updated = await db
    .update(migrationPolicies)
    .set({ policy, updatedAt: new Date() })
    .where(eq(migrationPolicies.name, policy.name))
    .returning({ name: migrationPolicies.name });
  return updated.length > 0;
}

export async function deleteMigrationPolicy(db: Db, name: string): Promise<boolean> {
  const deleted = await db
    .delete(migrationPolicies)
    .where(eq(migrationPolicies.name, name))
    .returning({ name: migrationPolicies.name });
  return deleted.length > 0;
}
