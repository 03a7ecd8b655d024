import { apiRequest } from '../api-client.ts';
import { onePositional, type Command } from '../command.ts';

/**
 * No --force: what blocks a removal (the API's 409 names it) is a guest, a migration or a live agent that still
 * needs the host; each has its own command to clear it, and none is done behind the admin's back.
 */
export const hostDelete: Command = {
  name: 'host-delete',
  usage: 'host-delete HOST',
  summary:
    'Remove a host (admin only; id or name): refused while it is online, has guests, a migration involving it is active or an alert rule names it; its name is then free for a reinstalled host to enrol',
  options: {},
  async run(args, conn) {
    const id = onePositional(args, 'HOST');
    const { removed, eventsRemoved } = await apiRequest<{
      removed: { id: string; name: string };
      eventsRemoved: number;
    }>(conn, 'DELETE', `/v1/hosts/${encodeURIComponent(id)}`);
    console.log(
      `host '${removed.name}' (${removed.id}) removed, with its ${eventsRemoved} events; its credential no longer authenticates`,
    );
  },
};
