import { waitUntil } from '../wait.ts';
import { findServer, type LauncherApi, type ServerSummary } from './api-client.ts';
import type { LaunchContext } from './context.ts';

export interface DemoGuest {
  name: string;
  host: string;
  mac: string;
}

export const DEMO_GUESTS: readonly DemoGuest[] = [
  { name: 'demo-1', host: 'host-1', mac: '52:54:00:00:00:01' },
  { name: 'demo-2', host: 'host-2', mac: '52:54:00:00:00:02' },
];

function createRequest(guest: DemoGuest): Record<string, unknown> {
  return {
    name: guest.name,
    host: guest.host,
    vcpus: 1,
    memoryMb: 256,
    dirtyRateMibs: 1,
    disks: [{ id: 'disk0', sizeMb: 64, storage: 'shared', cache: 'none' }],
    networks: [{ name: 'default', mac: guest.mac }],
  };
}

/** Creates the demo guests that do not exist yet; resolves when each runs with a heartbeat. */
export async function ensureDemoGuests(ctx: LaunchContext, api: LauncherApi): Promise<ServerSummary[]> {
  for (const guest of DEMO_GUESTS) {
    if (await findServer(api, guest.name)) continue;
    ctx.say(`guest ${guest.name}: creating on ${guest.host}`);
    const { status, json } = await api.request('POST', '/v1/servers', createRequest(guest));
    if (status >= 300) throw new Error(`POST /v1/servers (${guest.name}): ${status} ${JSON.stringify(json)}`);
  }
  const running: Record<string, ServerSummary> = {};
  await waitUntil(
    async () => {
      for (const guest of DEMO_GUESTS) {
        const server = await findServer(api, guest.name);
        if (server && isRunningWithHeartbeat(server)) running[guest.name] = server;
      }
      return Object.keys(running).length === DEMO_GUESTS.length;
    },
    {
      what: `${DEMO_GUESTS.map((g) => g.name).join(' and ')} to run with a heartbeat`,
      timeoutMs: 180_000,
      intervalMs: 1_000,
      signal: ctx.signal,
    },
  );
  return DEMO_GUESTS.map((g) => running[g.name] as ServerSummary);
}

function isRunningWithHeartbeat(server: ServerSummary): boolean {
  return server.status === 'running' && server.live?.heartbeat != null;
}
