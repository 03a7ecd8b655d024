import { describe, expect, it } from 'vitest';
import { coordinationTaskQueue } from '../../domain/task-queues.ts';

describe('coordinationTaskQueue', () => {
  it.each([
    ['vm-migration', 'vm-migration-coordination'],
    ['vm-migration-coordination', 'vm-migration-coordination'],
    ['test-1', 'test-1-coordination'],
  ])('%s -> %s', (queue, expected) => {
    expect(coordinationTaskQueue(queue)).toBe(expected);
    expect(coordinationTaskQueue(coordinationTaskQueue(queue))).toBe(expected);
  });
});
