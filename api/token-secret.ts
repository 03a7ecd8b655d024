import { createHash, randomBytes } from 'node:crypto';
import { API_TOKEN_PREFIX, ENROLMENT_TOKEN_PREFIX } from '../domain/api-tokens.ts';

/** A new secret token: its prefix (what it is) and 32 random bytes in base64url. Shown once; only its hash is kept. */
const secretToken = (prefix: string): string => `${prefix}${randomBytes(32).toString('base64url')}`;

export const generateApiToken = (): string => secretToken(API_TOKEN_PREFIX);
export const generateEnrolmentToken = (): string => secretToken(ENROLMENT_TOKEN_PREFIX);

/** What is stored and looked up: the hex SHA-256 of the whole token. */
export const hashApiToken = (token: string): string =>
  createHash('sha256').update(token, 'utf8').digest('hex');
