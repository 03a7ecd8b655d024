import type { Context } from '@temporalio/activity';
import type { ActivityExecuteInput, ActivityInterceptorsFactory, Next } from '@temporalio/worker';
import type { ActivityInboundCallsInterceptor } from '@temporalio/worker';
import { shouldReportWaiting, waitingMessage } from '../domain/waiting.ts';

type RecordWaiting = (event: {
  migrationId: string;
  message: string;
  data: Record<string, unknown>;
}) => Promise<void>;

/**
 * A step of a migration that keeps failing is retried by Temporal inside one activity (nothing reaches the
 * workflow's history); this says on the migration what it waits for, best effort (the database may be what
 * is down).
 */
export function waitingEvents(record: RecordWaiting): ActivityInterceptorsFactory {
  return (ctx: Context) => ({ inbound: new WaitingEventsInterceptor(ctx, record) });
}

class WaitingEventsInterceptor implements ActivityInboundCallsInterceptor {
  constructor(
    private readonly ctx: Context,
    private readonly record: RecordWaiting,
  ) {}

  async execute(input: ActivityExecuteInput, next: Next<ActivityInboundCallsInterceptor, 'execute'>) {
    const { attempt, activityType, scheduledTimestampMs } = this.ctx.info;
    const migrationId = migrationIdOf(input.args[0]);
    if (migrationId && shouldReportWaiting(attempt)) {
      const message = waitingMessage(activityType, attempt, Date.now() - scheduledTimestampMs);
      await this.record({ migrationId, message, data: { activity: activityType, attempt } }).catch(
        () => undefined,
      );
    }
    return next(input);
  }
}

function migrationIdOf(arg: unknown): string | null {
  if (typeof arg !== 'object' || arg === null) return null;
  const id = (arg as { migrationId?: unknown }).migrationId;
  return typeof id === 'string' ? id : null;
}
