import { describe, expect, it } from 'vitest';
import {
  hostCredential,
  isHostCredential,
  looksLikeHostCredential,
  sameSecret,
} from '../../domain/host-credential.ts';
import { createHmac } from 'node:crypto';

const KEY = 'k'.repeat(43);
const HOST = '0b9e2c1e-3f4a-4b5c-8d6e-7f8091a2b3c4';
const OTHER = '1c0f3d2f-4a5b-4c6d-9e7f-8091a2b3c4d5';

describe('hostCredential', () => {
  it('is vmh_ + base64url(HMAC-SHA256(key, "<hostId>:<generation>"))', () => {
    const mac = createHmac('sha256', KEY).update(`${HOST}:1`).digest('base64url');
    expect(hostCredential(KEY, HOST, 1)).toBe(`vmh_${mac}`);
    expect(looksLikeHostCredential(hostCredential(KEY, HOST, 1))).toBe(true);
  });

  it('is stable, and differs per host, per generation and per key', () => {
    const base = hostCredential(KEY, HOST, 1);
    expect(hostCredential(KEY, HOST, 1)).toBe(base);
    expect(hostCredential(KEY, OTHER, 1)).not.toBe(base);
    expect(hostCredential(KEY, HOST, 2)).not.toBe(base);
    expect(hostCredential(`${KEY}x`, HOST, 1)).not.toBe(base);
  });

  it('refuses an empty key', () => {
    expect(() => hostCredential('', HOST, 1)).toThrow(/AGENT_CREDENTIAL_KEY/);
  });
});

describe('isHostCredential', () => {
  const credential = hostCredential(KEY, HOST, 3);
  it('accepts the host’s credential at its generation only', () => {
    expect(isHostCredential(KEY, credential, { id: HOST, credentialGeneration: 3 })).toBe(true);
    expect(isHostCredential(KEY, credential, { id: HOST, credentialGeneration: 4 })).toBe(false);
    expect(isHostCredential(KEY, credential, { id: OTHER, credentialGeneration: 3 })).toBe(false);
  });
  it('refuses anything else, of any length', () => {
    for (const token of ['', 'vmh_', credential.slice(0, -1), `${credential}x`, credential.toUpperCase()]) {
      expect(isHostCredential(KEY, token, { id: HOST, credentialGeneration: 3 })).toBe(false);
    }
  });
});

describe('sameSecret', () => {
  it('compares whole strings', () => {
    expect(sameSecret('abc', 'abc')).toBe(true);
    expect(sameSecret('abc', 'abd')).toBe(false);
    expect(sameSecret('abc', 'abcd')).toBe(false);
    expect(sameSecret('', '')).toBe(true);
  });
});
