import { defineQuery, defineUpdate } from '@temporalio/workflow';
import type { LockHolder, LockRequest, RenewAnswer, TryAcquireAnswer } from '../domain/migration-lock.ts';

/** Granted or refused at once, never queued: a refused batch gives up its cycle (F23). */
export const tryAcquireLockUpdate = defineUpdate<TryAcquireAnswer, [LockRequest]>('tryAcquire');
/** `held: false` tells a holder its lease ran out (someone else may hold the lock now), or that it released it. */
export const renewLockUpdate = defineUpdate<RenewAnswer, [{ owner: string; leaseMs: number }]>('renew');
export const releaseLockUpdate = defineUpdate<{ released: boolean }, [{ owner: string }]>('release');
/** The live holder, or null (an expired one counts as none). */
export const lockHolderQuery = defineQuery<LockHolder | null>('holder');
