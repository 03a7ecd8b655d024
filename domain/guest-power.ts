import type { GuestStatus } from './guest-status.ts';

/**
 * Stopping and starting a guest, as Cloudpods' server-stop / server-start: a stopped guest is `ready`
 * (Cloudpods' word), which is also what a cold migration expects.
 */
export const powerActions = ['stop', 'start'] as const;
export type PowerAction = (typeof powerActions)[number];

export type PowerVerdict = { ok: true; already: boolean } | { ok: false; reason: string };

/** Whether the inventory allows the action now; `already`: nothing to do. */
export function powerVerdict(action: PowerAction, status: GuestStatus): PowerVerdict {
  const done: GuestStatus = action === 'stop' ? 'ready' : 'running';
  if (status === done || (action === 'stop' && status === 'stopped')) return { ok: true, already: true };
  const from: readonly GuestStatus[] =
    action === 'stop' ? ['running', 'error'] : ['ready', 'stopped', 'error'];
  if (from.includes(status)) return { ok: true, already: false };
  return {
    ok: false,
    reason: `the server is ${status}; ${action} needs it ${from.join(' or ')}`,
  };
}

/** The status the inventory records once the agent did it. */
export const statusAfter = (action: PowerAction): GuestStatus => (action === 'stop' ? 'ready' : 'running');
