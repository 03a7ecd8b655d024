import { defineQuery, defineUpdate } from '@temporalio/workflow';
import type { LockHolder, LockRequest, TryAcquireAnswer } from '../domain/migration-lock.ts';

/** Granted or refused at once, never queued: a refused batch gives up its cycle (F23). */
export const tryAcquireLockUpdate = defineUpdate<TryAcquireAnswer, [LockRequest]>('tryAcquire');
/** `held: false` tells a holder its lease ran out and someone else may hold the lock now. */
export const renewLockUpdate = defineUpdate<{ held: boolean }, [{ owner: string; leaseMs: number }]>('renew');
export const releaseLockUpdate = defineUpdate<{ released: boolean }, [{ owner: string }]>('release');
/** The live holder, or null (an expired one counts as none). */
export const lockHolderQuery = defineQuery<LockHolder | null>('holder');
