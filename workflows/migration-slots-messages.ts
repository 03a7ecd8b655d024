import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';
import type { SlotLimits, SlotRequest } from '../domain/slots.ts';

export interface AcquireSlotInput extends SlotRequest {
  limits: SlotLimits;
  leaseMs: number;
}

export type AcquireSlotAnswer = { granted: true } | { granted: false; position: number };

export interface SlotsView {
  holders: SlotRequest[];
  queue: SlotRequest[];
  limits: SlotLimits;
}

/** Non-blocking: answers at once with a slot or a queue position; a waiter hears of its grant by signal. */
export const acquireSlotUpdate = defineUpdate<AcquireSlotAnswer, [AcquireSlotInput]>('acquireSlot');
export const releaseSlotSignal = defineSignal<[{ migrationId: string }]>('releaseSlot');
export const renewSlotSignal = defineSignal<[{ migrationId: string; leaseMs: number }]>('renewSlot');
/** Sent to a waiting migration workflow when its slot is granted. */
export const slotGrantedSignal = defineSignal('slotGranted');
export const slotsQuery = defineQuery<SlotsView>('slots');
