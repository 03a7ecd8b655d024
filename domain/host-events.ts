import type { HostFlagChange, HostLossCause, RescueDecision, ResiliencePolicy } from './host-down.ts';

/**
 * The events recorded on a host (subject_kind 'host'), so an operator reads every host-down decision on the
 * host itself: `update` (its flags changed), `host_down` / `host_down_unconfirmed` (whether the loss is
 * confirmed, and by what), `host_down_auto_migrate` (who moves, who stays and why). The type names are
 * Cloudpods' notification actions (ActionHostDown, ActionHostDownAutoMigrate).
 */
export interface HostEventRecord {
  subjectKind: 'host';
  subjectId: string;
  type: 'update' | 'host_down' | 'host_down_unconfirmed' | 'host_down_auto_migrate';
  level: 'info' | 'warning' | 'error';
  message: string;
  data: Record<string, unknown>;
}

interface HostRef {
  id: string;
  name: string;
}

export function hostFlagsUpdatedEvent(host: HostRef, changes: HostFlagChange[]): HostEventRecord {
  return {
    subjectKind: 'host',
    subjectId: host.id,
    type: 'update',
    level: 'info',
    message: `host ${host.name}: ${changes.map((c) => `${c.field} ${c.from} -> ${c.to}`).join(', ')}`,
    data: Object.fromEntries(changes.map((c) => [c.field, c.to])),
  };
}

export interface HostLossVerdict {
  confirmed: boolean;
  cause: HostLossCause;
  /** What was seen, e.g. 'etcd lease expired', 'agent does not answer' or 'agent answers'. */
  evidence: string[];
}

export function hostDownEvent(host: HostRef, verdict: HostLossVerdict): HostEventRecord {
  const seen = verdict.evidence.join('; ');
  const data = { confirmed: verdict.confirmed, cause: verdict.cause, evidence: verdict.evidence };
  if (!verdict.confirmed) {
    return {
      subjectKind: 'host',
      subjectId: host.id,
      type: 'host_down_unconfirmed',
      level: 'warning',
      message: `host ${host.name} is not confirmed down (${seen}): nothing moves`,
      data,
    };
  }
  const what = verdict.cause === 'shutdown' ? 'its agent shut down gracefully' : 'it is down';
  return {
    subjectKind: 'host',
    subjectId: host.id,
    type: 'host_down',
    level: 'error',
    message: `host ${host.name}: ${what} (${seen})`,
    data,
  };
}

const entry = (d: RescueDecision) => ({ id: d.guestId, name: d.name, reason: d.reason });

export function hostDownAutoMigrateEvent(
  host: HostRef,
  input: { policy: ResiliencePolicy; cause: HostLossCause; decisions: RescueDecision[] },
): HostEventRecord {
  const moving = input.decisions.filter((d) => d.move);
  const staying = input.decisions.filter((d) => !d.move);
  const stayingText = staying.map((d) => `${d.name} (${d.reason})`).join(', ');
  const head = `host ${host.name} (policy ${input.policy}, ${input.cause})`;
  const message =
    input.decisions.length === 0
      ? `${head}: no guests to rescue`
      : moving.length === 0
        ? `${head}: no guest moves; staying: ${stayingText}`
        : `${head}: rescuing ${moving.length} of ${input.decisions.length}: ${moving.map((d) => d.name).join(', ')}` +
          (staying.length > 0 ? `; staying: ${stayingText}` : '');
  return {
    subjectKind: 'host',
    subjectId: host.id,
    type: 'host_down_auto_migrate',
    level: 'warning',
    message,
    data: {
      policy: input.policy,
      cause: input.cause,
      moving: moving.map(entry),
      staying: staying.map(entry),
    },
  };
}
