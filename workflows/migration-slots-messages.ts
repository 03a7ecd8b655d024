import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';
import type { SlotBlocker, SlotLimits, SlotRenewal, SlotRequest } from '../domain/slots.ts';

export interface AcquireSlotInput extends SlotRequest {
  limits: SlotLimits;
  leaseMs: number;
}

export type AcquireSlotAnswer = { granted: true } | { granted: false; position: number };

/** A migration that renewed after its lease had run out and was counted as a holder again. */
export interface ReinstatedHolder {
  migrationId: string;
  /** Workflow time of the renewal. */
  at: string;
  from: 'expired' | 'renewal' | 'queue';
  /** The limits the holders broke once it was counted again (empty: its slot was still free). */
  exceeds: SlotBlocker[];
}

export interface SlotsView {
  holders: SlotRequest[];
  queue: SlotRequest[];
  limits: SlotLimits;
  /** Holders whose lease ran out, most recent last (bounded; absent from runs before this was recorded). */
  expired?: SlotRequest[];
  /** Migrations that released their slot, most recent last (bounded): a later renewal from one is ignored. */
  released?: string[];
  /** Renewals from migrations that had lost their slot, most recent last (bounded). */
  reinstated?: ReinstatedHolder[];
}

/** A lease renewal; keepSlotLease also says who it is, so a holder whose lease ran out can be counted again. */
export interface RenewSlotInput extends SlotRenewal {
  leaseMs: number;
}

/**
 * left: it was waiting and is no longer in the queue; position is where it stood.
 * left false: it was not waiting; holding says whether it holds a slot (granted just before it gave up).
 */
export type LeaveSlotQueueAnswer = { left: true; position: number } | { left: false; holding: boolean };

/** Non-blocking: answers at once with a slot or a queue position; a waiter hears of its grant by signal. */
export const acquireSlotUpdate = defineUpdate<AcquireSlotAnswer, [AcquireSlotInput]>('acquireSlot');
/** Gives the slot back, or leaves the queue if still waiting. */
export const releaseSlotSignal = defineSignal<[{ migrationId: string }]>('releaseSlot');
export const renewSlotSignal = defineSignal<[RenewSlotInput]>('renewSlot');
/**
 * A waiter that gave up (its queue timeout ran out) leaves the queue, atomically: it learns its position, or
 * that it was granted a slot in the meantime, which it keeps (use it, or release it).
 */
export const leaveSlotQueueUpdate = defineUpdate<LeaveSlotQueueAnswer, [{ migrationId: string }]>(
  'leaveSlotQueue',
);
/** Sent to a waiting migration workflow when its slot is granted. */
export const slotGrantedSignal = defineSignal('slotGranted');
export const slotsQuery = defineQuery<SlotsView>('slots');
