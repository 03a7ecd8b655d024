import { Hono } from 'hono';
import { findHost, listHosts, recordEvent, upsertHostFromFacts } from '../../db/inventory.ts';
import type { HostFacts } from '../../domain/agent-contract.ts';
import type { ApiDeps } from '../deps.ts';
import { jsonBody, notFound, parseOr400 } from '../errors.ts';
import { hostFactsSchema } from '../schemas.ts';
import { hostView } from '../views.ts';

export function hostRoutes({ db, liveness }: ApiDeps) {
  return new Hono()
    .get('/', async (c) => {
      const [rows, online] = await Promise.all([listHosts(db), liveness.onlineHostIds()]);
      return c.json({ hosts: rows.map((h) => hostView(h, online)) });
    })
    .get('/:id', async (c) => {
      const id = c.req.param('id');
      const host = await findHost(db, id);
      if (!host) throw notFound('host', id);
      return c.json(hostView(host, await liveness.onlineHostIds()));
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
        });
      }
      return c.json(hostView(host, await liveness.onlineHostIds()));
    });
}
