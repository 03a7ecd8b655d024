import { createHmac, timingSafeEqual } from 'node:crypto';

/**
 * Each host's own credential, derived so the database holds no agent secret: `vmh_` +
 * base64url(HMAC-SHA256(AGENT_CREDENTIAL_KEY, `<hostId>:<generation>`)). The API and the workers hold the
 * key, never the agents; an agent holds only its own credential (enrolment hands it over once). Bumping a
 * host's `credential_generation` revokes the credential it had.
 */
export const HOST_CREDENTIAL_PREFIX = 'vmh_';

export function hostCredential(key: string, hostId: string, generation: number): string {
  if (key === '') throw new Error('AGENT_CREDENTIAL_KEY is empty');
  const mac = createHmac('sha256', key).update(`${hostId}:${generation}`).digest('base64url');
  return `${HOST_CREDENTIAL_PREFIX}${mac}`;
}

export const looksLikeHostCredential = (token: string): boolean =>
  token.startsWith(HOST_CREDENTIAL_PREFIX) && token.length === HOST_CREDENTIAL_PREFIX.length + 43;

/** Constant-time comparison of two secrets (a length mismatch is refused without comparing). */
export function sameSecret(given: string, expected: string): boolean {
  const a = Buffer.from(given);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}

/** Whether `token` is the credential of host `hostId` at `generation`. */
export function isHostCredential(
  key: string,
  token: string,
  host: { id: string; credentialGeneration: number },
): boolean {
  return sameSecret(token, hostCredential(key, host.id, host.credentialGeneration));
}
