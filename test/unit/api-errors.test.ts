import { describe, expect, it } from 'vitest';
import { ApiError, parseOr400 } from '../../api/errors.ts';
import { createServerSchema } from '../../api/schemas.ts';

function rejection(value: unknown): ApiError {
  try {
    parseOr400(createServerSchema, value);
  } catch (err) {
    if (err instanceof ApiError) return err;
    throw err;
  }
  throw new Error('expected a 400');
}

describe('request validation', () => {
  it('fills defaults for a minimal server', () => {
    const parsed = parseOr400(createServerSchema, { name: 'vm1', host: 'host-1' });
    expect(parsed).toMatchObject({
      vcpus: 1,
      memoryMb: 256,
      disks: [],
      project: 'default',
      dirtyRateMibs: 0,
    });
  });

  it('names the top-level field and what was expected', () => {
    const err = rejection({ name: 'vm1', host: 'host-1', memoryMb: 'lots' });
    expect(err.status).toBe(400);
    expect(err.field).toBe('memoryMb');
    expect(err.message).toMatch(/^memoryMb: .*number/);
  });

  it('names a nested field by its path', () => {
    const err = rejection({ name: 'vm1', host: 'h', disks: [{ id: 'd', sizeMb: 1, storage: 'nfs' }] });
    expect(err.field).toBe('disks.0.storage');
    expect(err.message).toContain('shared');
  });

  it('names a missing required field', () => {
    expect(rejection({ name: 'vm1' }).field).toBe('host');
  });

  it('rejects a name that could not be a hostname-like label', () => {
    expect(rejection({ name: '-bad name', host: 'h' }).field).toBe('name');
  });
});
