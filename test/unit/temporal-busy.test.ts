import { describe, expect, it } from 'vitest';
import { BUSY_RETRY, busyRetryDelayMs, isTemporalBusy } from '../../domain/temporal-busy.ts';

describe('isTemporalBusy', () => {
  it("recognises RESOURCE_EXHAUSTED on the error or on the gRPC error the client's ServiceError wraps", () => {
    const grpc = Object.assign(
      new Error('limit on number of concurrent in-flight updates has been reached (10)'),
      {
        code: 8,
      },
    );
    expect(isTemporalBusy(grpc)).toBe(true);
    expect(isTemporalBusy(new Error('Update-With-Start failed', { cause: grpc }))).toBe(true);
  });

  it('leaves every other failure to the caller', () => {
    expect(isTemporalBusy(Object.assign(new Error('not found'), { code: 5 }))).toBe(false);
    expect(isTemporalBusy(new Error('Update-With-Start failed', { cause: new Error('boom') }))).toBe(false);
    expect(isTemporalBusy('8')).toBe(false);
    expect(isTemporalBusy(null)).toBe(false);
    expect(isTemporalBusy({ code: '8' })).toBe(false);
  });

  it('does not loop on a cause cycle', () => {
    const a: { cause?: unknown } = {};
    a.cause = a;
    expect(isTemporalBusy(a)).toBe(false);
  });
});

describe('busyRetryDelayMs', () => {
  it('doubles from 25 ms to a 500 ms ceiling, drawn from the upper half', () => {
    expect([0, 1, 2, 3, 4, 5, 10].map((n) => busyRetryDelayMs(n, 1))).toEqual([
      25, 50, 100, 200, 400, 500, 500,
    ]);
    expect([0, 1, 2, 3, 4, 5, 10].map((n) => busyRetryDelayMs(n, 0))).toEqual([
      13, 25, 50, 100, 200, 250, 250,
    ]);
    expect(busyRetryDelayMs(4, 0.5)).toBe(300);
  });

  it('keeps inside its bounds whatever the draw', () => {
    expect(busyRetryDelayMs(-3, 2)).toBe(BUSY_RETRY.firstDelayMs);
    expect(busyRetryDelayMs(60, -1)).toBe(BUSY_RETRY.maxDelayMs / 2);
  });
});
