import { WorkflowExecutionAlreadyStartedError } from '@temporalio/client';
import { describe, expect, it } from 'vitest';
import { startOnceThePreviousRunCloses } from '../../api/workflow-runs.ts';

const alreadyStarted = () =>
  new WorkflowExecutionAlreadyStartedError(
    'Workflow execution already started',
    'live-migrate-x',
    'liveMigrate',
  );

describe('starting a run while the previous one under the same id closes', () => {
  it('retries while Temporal says the id is still running, then starts', async () => {
    let calls = 0;
    const started = await startOnceThePreviousRunCloses(async () => {
      calls += 1;
      if (calls < 3) throw alreadyStarted();
      return 'handle';
    }, 2_000);
    expect(started).toBe('handle');
    expect(calls).toBe(3);
  });

  it('gives up with the AlreadyStarted error once the wait is over', async () => {
    const began = Date.now();
    let calls = 0;
    await expect(
      startOnceThePreviousRunCloses(async () => {
        calls += 1;
        throw alreadyStarted();
      }, 500),
    ).rejects.toBeInstanceOf(WorkflowExecutionAlreadyStartedError);
    expect(Date.now() - began).toBeLessThan(1_500);
    expect(calls).toBeGreaterThan(1);
  });

  it('does not retry any other error', async () => {
    let calls = 0;
    await expect(
      startOnceThePreviousRunCloses(async () => {
        calls += 1;
        throw new Error('unavailable');
      }),
    ).rejects.toThrow('unavailable');
    expect(calls).toBe(1);
  });
});
