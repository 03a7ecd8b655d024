import { and, asc, eq, getTableColumns, isNotNull, isNull, or, sql } from 'drizzle-orm';
import type { Db } from './client.ts';
import { isUuid } from './inventory.ts';
import { apiTokens, type ApiToken } from './schema.ts';

export type NewApiToken = typeof apiTokens.$inferInsert;

/** Stores a token (its hash only); 'name-taken' when another token, revoked or not, has the name. */
export async function insertApiToken(db: Db, row: NewApiToken): Promise<ApiToken | 'name-taken'> {
  const [created] = await db
    .insert(apiTokens)
    .values(row)
    .onConflictDoNothing({ target: apiTokens.name })
    .returning();
  return created ?? 'name-taken';
}

export interface ApiTokenFilter {
  role?: ApiToken['role'];
  revoked?: boolean;
  /** Keyset paging in the list's order (oldest first, then id): the tokens after this one, at most `limit`. */
  after?: { createdAt: string; id: string } | null;
  limit?: number;
}

/** Tokens, oldest first; each row carries `pageKey`, its creation time at the database's precision. */
export function listApiTokens(db: Db, filter: ApiTokenFilter = {}) {
  const conditions = [
    filter.role !== undefined ? eq(apiTokens.role, filter.role) : undefined,
    filter.revoked === undefined
      ? undefined
      : filter.revoked
        ? isNotNull(apiTokens.revokedAt)
        : isNull(apiTokens.revokedAt),
    filter.after
      ? sql`(${apiTokens.createdAt}, ${apiTokens.id}) > (${filter.after.createdAt}::timestamptz, ${filter.after.id}::uuid)`
      : undefined,
  ].filter((c) => c !== undefined);
  const ordered = db
    .select({ ...getTableColumns(apiTokens), pageKey: sql<string>`${apiTokens.createdAt}::text` })
    .from(apiTokens)
    .where(conditions.length > 0 ? and(...conditions) : undefined)
    .orderBy(asc(apiTokens.createdAt), asc(apiTokens.id));
  return filter.limit === undefined ? ordered : ordered.limit(filter.limit);
}

/** The token with this hash, revoked or not; the caller decides what a revoked one means. */
export async function findApiTokenByHash(db: Db, tokenHash: string): Promise<ApiToken | undefined> {
  const [row] = await db.select().from(apiTokens).where(eq(apiTokens.tokenHash, tokenHash));
  return row;
}

export async function findApiToken(db: Db, idOrName: string): Promise<ApiToken | undefined> {
  const where = isUuid(idOrName)
    ? or(eq(apiTokens.id, idOrName), eq(apiTokens.name, idOrName))
    : eq(apiTokens.name, idOrName);
  const [row] = await db.select().from(apiTokens).where(where).limit(1);
  return row;
}

/** Revokes it now (a token already revoked keeps its first revocation time); the row as it is afterwards. */
export async function revokeApiToken(db: Db, id: string): Promise<ApiToken | undefined> {
  await db
    .update(apiTokens)
    .set({ revokedAt: new Date() })
    .where(and(eq(apiTokens.id, id), isNull(apiTokens.revokedAt)));
  const [row] = await db.select().from(apiTokens).where(eq(apiTokens.id, id));
  return row;
}

export async function touchApiToken(db: Db, id: string, at: Date): Promise<void> {
  await db.update(apiTokens).set({ lastUsedAt: at }).where(eq(apiTokens.id, id));
}
