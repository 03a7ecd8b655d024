import { describe, expect, it } from 'vitest';
import { readPrecheckVerdict } from '../../domain/precheck-verdict.ts';

const row = (phase: string, extra: { error?: string; checks?: Record<string, unknown>[] } = {}) => ({
  phase,
  error: extra.error ?? null,
  checks: extra.checks ?? null,
});
const chosen = { type: 'destination_chosen', message: 'destination dst', data: { destination: 'dst' } };
const failedCheck = { name: 'memory', ok: false, message: 'not enough memory', values: {} };

describe('readPrecheckVerdict (what a migrate request answers, from the record)', () => {
  it.each(['pending', 'prechecks'])('waits while the run is in %s with no verdict written', (phase) => {
    expect(readPrecheckVerdict(row(phase), [])).toEqual({ kind: 'waiting' });
  });

  it('answers the destination once destination_chosen is written, whatever came after', () => {
    expect(readPrecheckVerdict(row('prechecks'), [chosen])).toEqual({ kind: 'chosen', destination: 'dst' });
    // The run went on and failed later (e.g. preparing): the pre-checks still passed.
    expect(readPrecheckVerdict(row('failed', { error: 'no network' }), [chosen])).toEqual({
      kind: 'chosen',
      destination: 'dst',
    });
  });

  it('answers the failed checks of a run that ended in its pre-checks, from the precheck_failed event', () => {
    const event = {
      type: 'precheck_failed',
      message: 'no host fits',
      data: { failures: [failedCheck] },
    };
    expect(readPrecheckVerdict(row('failed', { error: 'no host fits' }), [event])).toEqual({
      kind: 'failed',
      reason: 'no host fits',
      failures: [failedCheck],
    });
  });

  it('falls back to the failed checks on the record, and a cancel during the pre-checks is a failure too', () => {
    const checks = [{ name: 'cpu', ok: true, message: 'ok', values: {} }, failedCheck];
    expect(readPrecheckVerdict(row('cancelled', { error: 'cancelled by operator', checks }), [])).toEqual({
      kind: 'failed',
      reason: 'cancelled by operator',
      failures: [failedCheck],
    });
    expect(readPrecheckVerdict(row('failed'), [])).toEqual({
      kind: 'failed',
      reason: 'pre-checks failed',
      failures: [],
    });
  });

  it('a run past its pre-checks without the event (older runs) answers without a destination', () => {
    expect(readPrecheckVerdict(row('queued'), [])).toEqual({ kind: 'chosen', destination: null });
    expect(readPrecheckVerdict(row('copying'), [])).toEqual({ kind: 'chosen', destination: null });
  });
});
