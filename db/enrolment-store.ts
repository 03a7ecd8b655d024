import { and, eq, gt, isNull, ne, sql } from 'drizzle-orm';
import type { Db } from './client.ts';
import { enrolmentTokens, hosts, type EnrolmentToken, type Host } from './schema.ts';

export type NewEnrolmentToken = typeof enrolmentTokens.$inferInsert;

export async function insertEnrolmentToken(db: Db, row: NewEnrolmentToken): Promise<EnrolmentToken> {
  const [created] = await db.insert(enrolmentTokens).values(row).returning();
  if (!created) throw new Error('enrolment token was not stored');
  return created;
}

export async function findEnrolmentTokenByHash(
  db: Db,
  tokenHash: string,
): Promise<EnrolmentToken | undefined> {
  const [row] = await db.select().from(enrolmentTokens).where(eq(enrolmentTokens.tokenHash, tokenHash));
  return row;
}

/**
 * Uses the token up, in one statement: only an unused, unexpired token is consumed, so two enrolments racing
 * with one token cannot both succeed. False: it was used or expired meanwhile.
 */
export async function consumeEnrolmentToken(db: Db, id: string, hostId: string): Promise<boolean> {
  const rows = await db
    .update(enrolmentTokens)
    .set({ usedAt: new Date(), usedByHostId: hostId })
    .where(
      and(
        eq(enrolmentTokens.id, id),
        isNull(enrolmentTokens.usedAt),
        gt(enrolmentTokens.expiresAt, sql`now()`),
      ),
    )
    .returning({ id: enrolmentTokens.id });
  return rows.length === 1;
}

/** What the credential check of api/authenticate.ts needs of every host. */
export const hostCredentialRows = (db: Db) =>
  db.select({ id: hosts.id, name: hosts.name, credentialGeneration: hosts.credentialGeneration }).from(hosts);

/** Another host registered at this agent URL, if any: the workers would not know whose credential to send. */
export async function otherHostAtAgentUrl(
  db: Db,
  agentUrl: string,
  hostId: string,
): Promise<Host | undefined> {
  const [row] = await db
    .select()
    .from(hosts)
    .where(and(eq(hosts.agentUrl, agentUrl), ne(hosts.id, hostId)))
    .limit(1);
  return row;
}

/** Revokes the host's credential: the next one is derived from the bumped generation. */
export async function bumpCredentialGeneration(db: Db, hostId: string): Promise<Host | undefined> {
  const [row] = await db
    .update(hosts)
    .set({ credentialGeneration: sql`${hosts.credentialGeneration} + 1`, updatedAt: new Date() })
    .where(eq(hosts.id, hostId))
    .returning();
  return row;
}

export async function setHostAgentUrl(db: Db, hostId: string, agentUrl: string): Promise<Host | undefined> {
  const [row] = await db
    .update(hosts)
    .set({ agentUrl, updatedAt: new Date() })
    .where(eq(hosts.id, hostId))
    .returning();
  return row;
}
