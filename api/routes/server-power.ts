import { Hono, type Context } from 'hono';
import { WorkflowExecutionAlreadyStartedError, WorkflowIdConflictPolicy } from '@temporalio/client';
import { findGuest } from '../../db/inventory.ts';
import { activeMigrationOfGuest } from '../../db/migration-store.ts';
import { powerVerdict, type PowerAction } from '../../domain/guest-power.ts';
import { guestPowerWorkflowId } from '../../domain/workflow-ids.ts';
import type { guestPower } from '../../workflows/guest-power.ts';
import { GuestIdKey } from '../../workflows/search-attributes.ts';
import { callerOf, requireProjectScope } from '../caller.ts';
import type { ApiDeps } from '../deps.ts';
import { ApiError, notFound } from '../errors.ts';
import { underGuestMigrationLock } from '../guest-migration-lock.ts';

/**
 * POST /v1/servers/:id/stop and /start (Cloudpods' server-stop, server-start): a durable workflow does it;
 * the answer is 202 with its id, or 409 when a migration or another stop/start of the server is in flight.
 */
export function serverPowerRoutes({ db, temporal, taskQueue }: ApiDeps) {
  const power = (action: PowerAction) => async (c: Context) => {
    const id = c.req.param('id') ?? '';
    const guest = await findGuest(db, id);
    if (!guest) throw notFound('server', id);
    requireProjectScope(callerOf(c), `server '${guest.name}'`, guest.project);
    // A migration in flight is the reason to name (the guest's status says only `migrating`).
    refuseDuringMigration(guest.name, await activeMigrationOfGuest(db, guest.id));
    const verdict = powerVerdict(action, guest.status);
    if (!verdict.ok)
      throw new ApiError(409, 'invalid_status', `cannot ${action} server '${guest.name}': ${verdict.reason}`);
    if (verdict.already) return c.json({ server: guest.name, action, workflowId: null, already: true }, 200);
    const workflowId = guestPowerWorkflowId(guest.id);
    // Under the guest's migration lock, so no migration starts between the check and the workflow's start.
    await underGuestMigrationLock(db, [guest], async (locked) => {
      refuseDuringMigration(guest.name, await activeMigrationOfGuest(locked, guest.id));
      try {
        await temporal.workflow.start<typeof guestPower>('guestPower', {
          taskQueue,
          workflowId,
          workflowIdConflictPolicy: WorkflowIdConflictPolicy.FAIL,
          args: [{ guestId: guest.id, action, requestedBy: callerOf(c).requester }],
          typedSearchAttributes: [{ key: GuestIdKey, value: guest.id }],
        });
      } catch (err) {
        if (err instanceof WorkflowExecutionAlreadyStartedError) {
          throw new ApiError(
            409,
            'power_in_progress',
            `a stop or start of server '${guest.name}' is in flight`,
          );
        }
        throw new ApiError(
          503,
          'unavailable',
          `could not start the ${action} workflow: ${(err as Error).message}`,
        );
      }
    });
    return c.json({ server: guest.name, action, workflowId, already: false }, 202);
  };
  return new Hono().post('/:id/stop', power('stop')).post('/:id/start', power('start'));
}

function refuseDuringMigration(name: string, active: { id: string; phase: string } | undefined | null): void {
  if (!active) return;
  throw new ApiError(
    409,
    'migration_in_progress',
    `server '${name}' has migration ${active.id} in flight (${active.phase})`,
    undefined,
    {
      migrationId: active.id,
    },
  );
}
