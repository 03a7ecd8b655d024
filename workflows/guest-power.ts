import { ApplicationFailure, proxyActivities } from '@temporalio/workflow';
import type { Activities } from '../activities/index.ts';
import { statusAfter, type PowerAction } from '../domain/guest-power.ts';
import type { Requester } from '../domain/requester.ts';
import { failureReason } from './failure-reason.ts';

const { loadGuestPlacement, stopGuestOnHost, startGuestOnHost, setGuestStatus, recordEvent } =
  proxyActivities<Activities>({
    // A QEMU guest gets its shutdown grace before it is killed: the stop may take that long.
    startToCloseTimeout: '2 minutes',
    retry: { initialInterval: '1 second', maximumAttempts: 5 },
  });

export interface GuestPowerInput {
  guestId: string;
  action: PowerAction;
  /** Who asked, recorded on the guest's events; absent in runs started before it was passed. */
  requestedBy?: Requester;
}

/**
 * server-stop / server-start: the guest's agent stops or starts it (idempotent: already so is a no-op), then
 * the inventory says so. A refusal by the agent (a migration in flight, say) leaves the status as it was.
 */
export async function guestPower({ guestId, action, requestedBy }: GuestPowerInput): Promise<void> {
  const by = requestedBy ? { requestedBy } : {};
  const placement = await loadGuestPlacement(guestId);
  try {
    await (action === 'stop' ? stopGuestOnHost(placement) : startGuestOnHost(placement));
  } catch (err) {
    const reason = failureReason(err);
    await recordEvent({
      subjectKind: 'guest',
      subjectId: guestId,
      type: `${action}_failed`,
      level: 'error',
      message: `${action} on ${placement.hostName} failed: ${reason}`,
      ...by,
    });
    throw ApplicationFailure.nonRetryable(reason, 'GuestPowerFailed');
  }
  await setGuestStatus({ guestId, status: statusAfter(action), error: null });
  await recordEvent({
    subjectKind: 'guest',
    subjectId: guestId,
    type: action === 'stop' ? 'stopped' : 'started',
    message: `guest ${action === 'stop' ? 'stopped' : 'started'} on ${placement.hostName}`,
    ...by,
  });
}
