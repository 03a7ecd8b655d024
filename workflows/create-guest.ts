import { ApplicationFailure, proxyActivities } from '@temporalio/workflow';
import type { Activities } from '../activities/index.ts';
import type { Requester } from '../domain/requester.ts';
import { failureReason } from './failure-reason.ts';

const { loadGuestPlacement, defineGuestOnHost, startGuestOnHost, setGuestStatus, recordEvent } =
  proxyActivities<Activities>({
    startToCloseTimeout: '2 minutes',
    retry: { initialInterval: '1 second', maximumAttempts: 5 },
  });

export interface CreateGuestInput {
  guestId: string;
  /** Who asked, recorded on the guest's events; absent in runs started before it was passed. */
  requestedBy?: Requester;
}

/** Defines the guest on its host's agent and starts it; the inventory row follows each step. */
export async function createGuest({ guestId, requestedBy }: CreateGuestInput): Promise<void> {
  const by = requestedBy ? { requestedBy } : {};
  const placement = await loadGuestPlacement(guestId);
  try {
    await defineGuestOnHost(placement);
    await startGuestOnHost(placement);
  } catch (err) {
    const reason = failureReason(err);
    await setGuestStatus({ guestId, status: 'error', error: reason });
    await recordEvent({
      subjectKind: 'guest',
      subjectId: guestId,
      type: 'create_failed',
      level: 'error',
      message: `guest could not be started on ${placement.hostName}: ${reason}`,
      ...by,
    });
    throw ApplicationFailure.nonRetryable(reason, 'GuestCreateFailed');
  }
  await setGuestStatus({ guestId, status: 'running', error: null });
  await recordEvent({
    subjectKind: 'guest',
    subjectId: guestId,
    type: 'started',
    message: `guest started on ${placement.hostName}`,
    ...by,
  });
}
