import { createHash, randomBytes } from 'node:crypto';
import { API_TOKEN_PREFIX } from '../domain/api-tokens.ts';

/** A new API token: `vmt_` and 32 random bytes in base64url. Shown once; only its hash is kept. */
export const generateApiToken = (): string => `${API_TOKEN_PREFIX}${randomBytes(32).toString('base64url')}`;

/** What is stored and looked up: the hex SHA-256 of the whole token. */
export const hashApiToken = (token: string): string =>
  createHash('sha256').update(token, 'utf8').digest('hex');
