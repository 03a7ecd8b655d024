import { describe, expect, it } from 'vitest';
import { failureReason } from '../../workflows/failure-reason.ts';

describe('failureReason', () => {
  it('digs to the innermost cause', () => {
    const inner = new Error('agent said no');
    const outer = new Error('activity failed', { cause: new Error('application failure', { cause: inner }) });
    expect(failureReason(outer)).toBe('agent said no');
  });

  it('stringifies non-errors', () => {
    expect(failureReason('plain')).toBe('plain');
  });
});
