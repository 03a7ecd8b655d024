import { describe, expect, it } from 'vitest';
import { askWhileBusy } from '../../activities/ask-while-busy.ts';

const busy = () =>
  new Error('Update-With-Start failed', {
    cause: Object.assign(new Error('limit on number of concurrent in-flight updates has been reached (10)'), {
      code: 8,
    }),
  });

describe('askWhileBusy', () => {
  it('asks again while Temporal is busy, then answers', async () => {
    let asked = 0;
    const answer = await askWhileBusy(async () => {
      asked += 1;
      if (asked < 3) throw busy();
      return 'granted';
    });
    expect(answer).toBe('granted');
    expect(asked).toBe(3);
  });

  it('does not ask again after any other failure', async () => {
    let asked = 0;
    await expect(
      askWhileBusy(async () => {
        asked += 1;
        throw Object.assign(new Error('workflow not found'), { code: 5 });
      }),
    ).rejects.toThrow('workflow not found');
    expect(asked).toBe(1);
  });
});
