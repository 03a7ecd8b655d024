import { eq } from 'drizzle-orm';
import type { Db } from '../db/client.ts';
import { hosts } from '../db/schema.ts';
import { hostCredential } from '../domain/host-credential.ts';

/**
 * What the workers and the API present to a host's agent: that host's own credential, derived from
 * AGENT_CREDENTIAL_KEY and the host's id and credential generation (domain/host-credential.ts). No credential is
 * shared between hosts, so a call that reaches the wrong address carries only the credential of the host
 * registered there.
 */
export interface AgentCredentials {
  /** The credential of the host whose row is at hand. */
  forHost(host: { id: string; credentialGeneration: number }): string;
  /**
   * The credential of the host registered at this agent URL, for callers that hold only the URL (most
   * activities: their inputs carry agent URLs). Looked up in the inventory, cached for a few seconds.
   */
  forUrl(agentUrl: string): Promise<string>;
  /** Drops a cached look-up (the URL moved or the host re-enrolled). */
  forget?(agentUrl: string): void;
}

const CACHE_MS = 5_000;

export function agentCredentials(db: Db, key: string): AgentCredentials {
  const cache = new Map<string, { credential: string; at: number }>();
  const forHost = (host: { id: string; credentialGeneration: number }) =>
    hostCredential(key, host.id, host.credentialGeneration);
  return {
    forHost,
    async forUrl(agentUrl) {
      const cached = cache.get(agentUrl);
      if (cached && Date.now() - cached.at < CACHE_MS) return cached.credential;
      const rows = await db
        .select({ id: hosts.id, credentialGeneration: hosts.credentialGeneration })
        .from(hosts)
        .where(eq(hosts.agentUrl, agentUrl));
      if (rows.length !== 1) {
        // Nothing is sent where it is not certain whose agent answers.
        throw new Error(
          rows.length === 0
            ? `no registered host has agent URL ${agentUrl}: no credential to call it with`
            : `${rows.length} hosts are registered with agent URL ${agentUrl}: refusing to pick a credential`,
        );
      }
      const credential = forHost(rows[0]!);
      cache.set(agentUrl, { credential, at: Date.now() });
      return credential;
    },
    forget(agentUrl) {
      cache.delete(agentUrl);
    },
  };
}

/** A fixed credential for every URL: tests and benchmarks whose agents all accept one. */
export const fixedAgentCredential = (credential: string): AgentCredentials => ({
  forHost: () => credential,
  forUrl: async () => credential,
});
