import { Hono } from 'hono';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { handleError } from '../../api/errors.ts';

describe('handleError on an unexpected error', () => {
  afterEach(() => vi.restoreAllMocks());

  it('answers 500 without details and logs what the error wraps, with its code', async () => {
    const logged: string[] = [];
    vi.spyOn(console, 'error').mockImplementation((line: string) => void logged.push(line));
    const app = new Hono();
    app.onError(handleError);
    app.put('/v1/hosts/h1/report', () => {
      const pgError = Object.assign(new Error('deadlock detected'), { code: '40P01' });
      throw new Error('Failed query: insert into "guest_reports" …', { cause: pgError });
    });
    const res = await app.request('/v1/hosts/h1/report', { method: 'PUT' });
    expect(res.status).toBe(500);
    expect(await res.json()).toEqual({
      error: { code: 'internal', message: 'internal error; see the API log' },
    });
    expect(logged).toHaveLength(1);
    expect(logged[0]).toMatch(/^PUT \/v1\/hosts\/h1\/report: Error: Failed query/);
    expect(logged[0]).toContain('\n  caused by: deadlock detected (40P01)');
  });
});
