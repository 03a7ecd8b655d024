import { describe, expect, it } from 'vitest';
import { shouldReportWaiting, waitingMessage } from '../../domain/waiting.ts';

describe('waiting events of steps that retry until they succeed', () => {
  it('reports from the third attempt, then every tenth, never every attempt', () => {
    const reported = Array.from({ length: 40 }, (_, i) => i + 1).filter(shouldReportWaiting);
    expect(reported).toEqual([3, 13, 23, 33]);
  });

  it('says what the step waits for and for how long', () => {
    expect(waitingMessage('commitMigration', 3, 7_400)).toBe(
      'waiting for PostgreSQL, to record the guest on its new host: 2 attempts failed over 7 s; retrying until it succeeds',
    );
    expect(waitingMessage('somethingElse', 13, 60_000)).toContain('step somethingElse');
  });
});
