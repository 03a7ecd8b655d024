import { migrationStatuses, type MigrationStatus } from '../domain/agent-contract.ts';
import { AgentFailure } from './errors.ts';

/** The longest a status read may be held open: well inside any caller's timeout. */
export const MAX_MIGRATION_WAIT_MS = 5_000;
/**
 * Between two hypervisor events a held read still looks this often: not every change comes with an event
 * (the sim has none, and QEMU's MIGRATION event does not cover a block migration's mirror phase).
 */
export const MIGRATION_WAIT_RECHECK_MS = 50;

export interface MigrationWaitRequest {
  /** Hold the read up to this long… */
  waitMs: number;
  /** …while the status is still this one. Absent: answer at once. */
  unless: MigrationStatus['status'] | null;
}

/** `?waitMs=&unless=` of `GET /v1/guests/:id/migration`; bad values are a 400 naming the parameter. */
export function migrationWaitRequest(query: { waitMs?: string; unless?: string }): MigrationWaitRequest {
  let waitMs = 0;
  if (query.waitMs !== undefined) {
    waitMs = Number(query.waitMs);
    if (!/^\d+$/.test(query.waitMs) || waitMs > MAX_MIGRATION_WAIT_MS) {
      throw new AgentFailure(
        400,
        'invalid_request',
        `waitMs: a whole number of milliseconds from 0 to ${MAX_MIGRATION_WAIT_MS}, got '${query.waitMs}'`,
        'waitMs',
      );
    }
  }
  const unless = query.unless ?? null;
  if (unless !== null && !(migrationStatuses as readonly string[]).includes(unless)) {
    throw new AgentFailure(
      400,
      'invalid_request',
      `unless: one of ${migrationStatuses.join(', ')}, got '${unless}'`,
      'unless',
    );
  }
  return { waitMs, unless: unless as MigrationStatus['status'] | null };
}

/**
 * Wakes held status reads of one guest the moment the hypervisor reports a migration event, so a caller learns
 * of a completion within milliseconds instead of at its next poll.
 */
export class MigrationSignals {
  private readonly waiters = new Map<string, Set<() => void>>();

  notify(guestId: string): void {
    const set = this.waiters.get(guestId);
    if (!set) return;
    this.waiters.delete(guestId);
    for (const wake of set) wake();
  }

  /** Resolves at the next notify for this guest or after ms, whichever comes first. */
  next(guestId: string, ms: number): Promise<void> {
    return new Promise((resolve) => {
      let set = this.waiters.get(guestId);
      if (!set) this.waiters.set(guestId, (set = new Set()));
      const wake = () => {
        clearTimeout(timer);
        set.delete(wake);
        resolve();
      };
      const timer = setTimeout(wake, ms);
      set.add(wake);
    });
  }
}

/**
 * The migration status, held until it differs from `unless` or `waitMs` has passed: a long poll. Each read is
 * the driver's own (idempotent); nothing changes on the hypervisor.
 */
export async function waitForMigrationChange(
  read: () => Promise<MigrationStatus>,
  signals: MigrationSignals,
  guestId: string,
  request: MigrationWaitRequest,
): Promise<MigrationStatus> {
  const deadline = Date.now() + request.waitMs;
  for (;;) {
    const status = await read();
    const left = deadline - Date.now();
    if (request.unless === null || status.status !== request.unless || left <= 0) return status;
    await signals.next(guestId, Math.min(left, MIGRATION_WAIT_RECHECK_MS));
  }
}
