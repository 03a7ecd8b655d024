import type { MiniStack } from './mini-stack.ts';
import { createRunningServer } from './migrations.ts';
import { waitFor } from './wait.ts';

export interface AlertEvent {
  id: number;
  at: string;
  action: string;
  notes: string;
  data: Record<string, unknown>;
}

/** A rule's events, newest first. */
export async function alertEvents(stack: MiniStack, rule: string): Promise<AlertEvent[]> {
  return (await stack.api<{ items: AlertEvent[] }>('GET', `/v1/migration-alerts/${rule}/events`)).body.items;
}

export function waitForAlertEvent(
  stack: MiniStack,
  rule: string,
  action: string,
  timeoutMs = 90_000,
): Promise<AlertEvent> {
  return waitFor(
    `${rule}: a ${action} event`,
    async () => (await alertEvents(stack, rule)).find((e) => e.action === action) ?? null,
    { timeoutMs },
  );
}

/**
 * Two sim guests of 4 vCPUs at 100 % (`<host>-a`, `<host>-b`) make an 8-core host 100 % busy; either one is 50
 * points on any 8-core host.
 */
export async function busyHost(stack: MiniStack, host: string): Promise<void> {
  for (const suffix of ['a', 'b']) {
    await createRunningServer(stack, {
      name: `${host}-${suffix}`,
      host,
      vcpus: 4,
      memoryMb: 512,
      dirtyRateMibs: 98,
    });
  }
}
