import type { ApiRole } from './api-roles.ts';

/**
 * Who asked for a migration or caused an event, as recorded on its row: an API token, the bootstrap admin token,
 * or a trigger of the system itself (an alert rule, a host's failure, a host's maintenance run by the system).
 */
export interface Requester {
  /** `token:<name>`, `bootstrap`, `alert:<rule>`, `host-down:<host>`, `maintenance:<host>`. */
  by: string;
  role: ApiRole | 'system';
  /** The API token's id when a token asked (names are unique, but ids are what the audit joins on). */
  tokenId?: string;
}

export const BOOTSTRAP_REQUESTER: Requester = { by: 'bootstrap', role: 'admin' };

export const tokenRequester = (token: { id: string; name: string; role: ApiRole }): Requester => ({
  by: `token:${token.name}`,
  role: token.role,
  tokenId: token.id,
});

/** A migration the system started on its own: `alert:<rule>`, `host-down:<host>`, `maintenance:<host>`. */
export const triggerRequester = (
  trigger: 'alert' | 'host-down' | 'maintenance',
  subject: string,
): Requester => ({
  by: `${trigger}:${subject}`,
  role: 'system',
});

/** One line for people: `token:ops (operator)`; rows from before requesters were recorded say so. */
export const describeRequester = (requester: Requester | null | undefined): string =>
  requester ? `${requester.by} (${requester.role})` : 'unknown (recorded before requesters were)';
