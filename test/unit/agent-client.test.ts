import { describe, expect, it } from 'vitest';
import { AgentCallError } from '../../activities/agent-client.ts';

describe('AgentCallError.retryable', () => {
  it.each([
    [0, true],
    [408, true],
    [429, true],
    [500, true],
    [503, true],
    [400, false],
    [404, false],
    [409, false],
    [501, false],
  ])('status %i retryable=%s', (status, retryable) => {
    expect(new AgentCallError('http://a', status, 'x', 'm').retryable).toBe(retryable);
  });
});
