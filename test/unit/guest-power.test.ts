import { describe, expect, it } from 'vitest';
import { powerVerdict, statusAfter } from '../../domain/guest-power.ts';
import { guestStatuses } from '../../domain/guest-status.ts';

describe('server stop and start (Cloudpods: server-stop, server-start)', () => {
  it.each([
    ['stop', 'running', { ok: true, already: false }],
    ['stop', 'error', { ok: true, already: false }],
    ['stop', 'ready', { ok: true, already: true }],
    ['stop', 'stopped', { ok: true, already: true }],
    ['start', 'ready', { ok: true, already: false }],
    ['start', 'stopped', { ok: true, already: false }],
    ['start', 'error', { ok: true, already: false }],
    ['start', 'running', { ok: true, already: true }],
  ] as const)('%s from %s', (action, status, verdict) => {
    expect(powerVerdict(action, status)).toEqual(verdict);
  });

  it.each(['creating', 'migrating', 'deleting'] as const)(
    'refuses both while the server is %s, saying why',
    (status) => {
      for (const action of ['stop', 'start'] as const) {
        const verdict = powerVerdict(action, status);
        expect(verdict.ok).toBe(false);
        expect(!verdict.ok && verdict.reason).toContain(`the server is ${status}`);
      }
    },
  );

  it('decides every status', () => {
    for (const status of guestStatuses) {
      for (const action of ['stop', 'start'] as const)
        expect(powerVerdict(action, status)).toHaveProperty('ok');
    }
  });

  it('leaves a stopped server ready, as Cloudpods', () => {
    expect(statusAfter('stop')).toBe('ready');
    expect(statusAfter('start')).toBe('running');
  });
});
