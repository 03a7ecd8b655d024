import { CancelledFailure, Context } from '@temporalio/activity';

/**
 * The loop of an activity that keeps a lease alive for as long as its workflow wants: renew every
 * renewIntervalMs, heartbeat in between (at least every third of the heartbeat timeout, so a dead worker is
 * noticed and the workflow's cancel reaches us), return when the workflow cancels. Any other end (a timeout,
 * a worker shutdown, an error `renew` throws) fails the attempt, so a retry goes on renewing unless the error
 * is non-retryable.
 */
export async function renewUntilCancelled(options: {
  renewIntervalMs: number;
  renew: () => Promise<void>;
  /** What each heartbeat carries (a retried attempt reads it back). */
  details?: () => unknown;
}): Promise<void> {
  const ctx = Context.current();
  const tickMs = Math.max(
    50,
    Math.min(
      options.renewIntervalMs,
      ctx.info.heartbeatTimeoutMs ? ctx.info.heartbeatTimeoutMs / 3 : Infinity,
    ),
  );
  let renewedAt = -Infinity;
  try {
    for (;;) {
      if (Date.now() - renewedAt >= options.renewIntervalMs) {
        renewedAt = Date.now();
        await options.renew();
      }
      ctx.heartbeat(options.details?.());
      await ctx.sleep(tickMs);
    }
  } catch (err) {
    if (err instanceof CancelledFailure && ctx.cancellationDetails?.cancelRequested) return;
    throw err;
  }
}
