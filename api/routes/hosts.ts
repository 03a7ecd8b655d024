import { AgentClient } from '../../activities/agent-client.ts';
import { Hono } from 'hono';
import { hostEvents, updateHostAutoMigrateFlags } from '../../db/host-store.ts';
import { findHost, listHosts, recordEvent, upsertHostFromFacts } from '../../db/inventory.ts';
import type { HostFacts } from '../../domain/agent-contract.ts';
import { callerOf } from '../caller.ts';
import type { ApiDeps } from '../deps.ts';
import { ApiError, jsonBody, notFound, parseOr400 } from '../errors.ts';
import { hostEventView } from '../host-event-views.ts';
import { hostAutoMigrateSchema, hostEventsQuerySchema } from '../host-schemas.ts';
import { hostFactsSchema } from '../schemas.ts';
import { hostView } from '../views.ts';

/** Hosts by id or name; auto-migrate-on-host-down is Cloudpods' PerformAutoMigrateOnHostDown. */
/** How long the flags endpoint waits for the host's agent to confirm its fencing. */
const AGENT_ARM_TIMEOUT_MS = 5_000;

export function hostRoutes({ db, liveness, agentToken }: ApiDeps) {
  const hostOr404 = async (id: string) => {
    const host = await findHost(db, id);
    if (!host) throw notFound('host', id);
    return host;
  };
  return new Hono()
    .get('/', async (c) => {
      const [rows, online] = await Promise.all([listHosts(db), liveness.onlineHostIds()]);
      return c.json({ hosts: rows.map((h) => hostView(h, online)) });
    })
    .get('/:id', async (c) => {
      const host = await hostOr404(c.req.param('id'));
      return c.json(hostView(host, await liveness.onlineHostIds()));
    })
    .get('/:id/events', async (c) => {
      const { limit } = parseOr400(hostEventsQuerySchema, c.req.query());
      const host = await hostOr404(c.req.param('id'));
      return c.json({ events: (await hostEvents(db, host.id, limit)).map((e) => hostEventView(e, host)) });
    })
    .post('/:id/auto-migrate-on-host-down', async (c) => {
      const patch = parseOr400(hostAutoMigrateSchema, await jsonBody(c));
      const host = await hostOr404(c.req.param('id'));
      // A rescue may only start the guests elsewhere once the host fences them when it loses its lease: the
      // agent is armed first, and the flag stays off if it cannot be.
      const requester = callerOf(c).requester;
      const outcome = await updateHostAutoMigrateFlags(
        db,
        host.id,
        patch,
        async (locked) => {
          try {
            await new AgentClient(locked.agentUrl, agentToken, AGENT_ARM_TIMEOUT_MS).setFencing(true);
          } catch (err) {
            throw new ApiError(
              503,
              'agent_unreachable',
              `auto_migrate_on_host_down: the agent of host ${locked.name} did not confirm it will fence its guests (${(err as Error).message}); the flag stays off`,
              'auto_migrate_on_host_down',
            );
          }
        },
        requester,
      );
      if (!outcome) throw notFound('host', c.req.param('id'));
      if (!outcome.ok) throw new ApiError(400, 'invalid_request', outcome.message, outcome.field);
      if (!outcome.host.autoMigrateOnHostDown && host.autoMigrateOnHostDown) {
        // Best effort: an agent that misses it follows the flag at its next registration.
        await new AgentClient(host.agentUrl, agentToken, AGENT_ARM_TIMEOUT_MS)
          .setFencing(false)
          .catch(() => undefined);
      }
      return c.json(hostView(outcome.host, await liveness.onlineHostIds()));
    })
    .post('/register', async (c) => {
      const facts: HostFacts = parseOr400(hostFactsSchema, await jsonBody(c));
      const clash = await findHost(db, facts.name);
      if (clash && clash.id !== facts.hostId) {
        return c.json(
          {
            error: {
              code: 'conflict',
              message: `host name '${facts.name}' is already registered with id ${clash.id}`,
              field: 'name',
            },
          },
          409,
        );
      }
      const host = await upsertHostFromFacts(db, facts);
      if (!clash) {
        await recordEvent(db, {
          subjectKind: 'host',
          subjectId: host.id,
          type: 'registered',
          message: `host ${host.name} registered from ${host.agentUrl}`,
          data: { qemuVersion: host.qemuVersion, cpuModel: host.cpuModel },
          requestedBy: callerOf(c).requester,
        });
      }
      // The cluster's registered hosts: the only ones its agent migrates to or from (agent/peers.ts).
      const peers = (await listHosts(db))
        .filter((peer) => peer.clusterId === host.clusterId)
        .map(({ id, name, address, migrationAddress, agentUrl }) => ({
          id,
          name,
          address,
          migrationAddress,
          agentUrl,
        }));
      return c.json({ ...hostView(host, await liveness.onlineHostIds()), peers });
    });
}
