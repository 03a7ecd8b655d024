import { setTimeout as sleep } from 'node:timers/promises';
import { BUSY_RETRY, busyRetryDelayMs, isTemporalBusy } from '../domain/temporal-busy.ts';

/** Sends a workflow update again while Temporal turns it away as busy (domain/temporal-busy.ts), then gives up. */
export async function askWhileBusy<T>(ask: () => Promise<T>): Promise<T> {
  const giveUpAt = Date.now() + BUSY_RETRY.giveUpAfterMs;
  for (let attempt = 0; ; attempt++) {
    try {
      return await ask();
    } catch (error) {
      if (!isTemporalBusy(error) || Date.now() >= giveUpAt) throw error;
      await sleep(busyRetryDelayMs(attempt, Math.random()));
    }
  }
}
