import { Hono } from 'hono';
import { readBody } from '../http.ts';
import { simEventSchema, type SimEventReceiver } from './sim-peer.ts';

/**
 * The endpoint a sim source posts migration events to (see sim-peer.ts); mounted at /v1/internal,
 * behind the agent's bearer auth like every /v1 route.
 */
export function simInternalRoutes(receiver: SimEventReceiver): Hono {
  const app = new Hono();
  app.post('/sim/migrations/:migrationId/events', async (c) => {
    const event = await readBody(c, simEventSchema);
    await receiver.receiveSimEvent(c.req.param('migrationId'), event);
    return c.json({ received: true });
  });
  return app;
}
