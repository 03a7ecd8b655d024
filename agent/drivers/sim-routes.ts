import { Hono } from 'hono';
import { AgentFailure } from '../errors.ts';
import { bearerToken, readBody } from '../http.ts';
import { simEventSchema, type SimEventReceiver } from './sim-peer.ts';

/** The endpoint a sim source posts migration events to (see sim-peer.ts); mounted at /v1/internal. */
export function simInternalRoutes(receiver: SimEventReceiver): Hono {
  const app = new Hono();
  app.post('/sim/migrations/:migrationId/events', async (c) => {
    const key = bearerToken(c);
    if (key === null) throw new AgentFailure(401, 'unauthorized', 'missing migration key');
    const event = await readBody(c, simEventSchema);
    await receiver.receiveSimEvent(c.req.param('migrationId'), key, event);
    return c.json({ received: true });
  });
  return app;
}
