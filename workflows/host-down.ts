import { proxyActivities, sleep, workflowInfo } from '@temporalio/workflow';
import type { Activities } from '../activities/index.ts';
import type { HostLossCause, RescueDecision } from '../domain/host-down.ts';
import { hostDownAutoMigrateEvent, hostDownEvent } from '../domain/host-events.ts';
import { fencingWaitMs, type HostDownTimings } from '../domain/host-down-timing.ts';
import { startHostMigration } from './host-migration-child.ts';
import { hostEventLog } from './host-event-log.ts';
import type { LiveMigrationTimings } from '../domain/live-migration.ts';

const { probeLostHost, planHostDownRescues } = proxyActivities<Activities>({
  startToCloseTimeout: '30 seconds',
  retry: { initialInterval: '1 second', maximumInterval: '10 seconds' },
});

export interface HostDownInput {
  hostId: string;
  /** The lease that expired (hex), so each loss of the host is its own run. */
  leaseId: string;
  cause: HostLossCause;
  timings: HostDownTimings;
  migrationTimings: LiveMigrationTimings;
}

export interface RescueOutcome {
  guestId: string;
  name: string;
  migrationId: string | null;
  outcome: 'completed' | 'failed' | 'refused';
  error: string | null;
}

export interface HostDownResult {
  confirmed: boolean;
  decisions: RescueDecision[];
  rescues: RescueOutcome[];
}

/**
 * A host's lease expired (or its agent stopped): confirm it is down, wait until it must have fenced its guests,
 * then restart the shared-storage guests the resilience policy and the host's flags allow elsewhere, each as a
 * rescue migration. Every decision is an event on the host.
 */
export async function hostDown(input: HostDownInput): Promise<HostDownResult> {
  const { hostId, cause } = input;
  const key = workflowInfo().workflowId;
  const { event, record } = hostEventLog(hostId);

  const first = await probeLostHost(hostId);
  const host = { id: hostId, name: first.hostName };
  const lost = cause === 'shutdown' ? 'agent stopped gracefully' : 'etcd lease expired';
  await event(
    'host_lease_lost',
    `host ${first.hostName}: ${lost} (lease ${input.leaseId}); confirming`,
    { cause, leaseId: input.leaseId, agentAnswers: first.agentAnswers, liveGuests: first.liveGuestIds },
    'warning',
  );
  if (first.leaseBack) return notDown([lost, 'holds a lease again']);
  // The host fenced its guests before its lease expired; the margin covers slow clocks and a fence in progress.
  await sleep(fencingWaitMs(input.timings));
  const probe = await probeLostHost(hostId);
  if (probe.leaseBack) return notDown([lost, 'holds a lease again']);
  const evidence = [
    lost,
    probe.agentAnswers
      ? `agent answers; live guests: ${probe.liveGuestIds.length === 0 ? 'none (fenced)' : probe.liveGuestIds.length}`
      : 'agent does not answer',
  ];
  await record(hostDownEvent(host, { confirmed: true, cause, evidence }));

  const { policy, decisions } = await planHostDownRescues({
    hostId,
    cause,
    liveGuestIds: probe.liveGuestIds,
  });
  await record(hostDownAutoMigrateEvent(host, { policy, cause, decisions }));
  const rescues = await Promise.all(decisions.filter((d) => d.move).map((d) => rescue(d, probe.hostName)));
  return { confirmed: true, decisions, rescues };

  async function notDown(evidence: string[]): Promise<HostDownResult> {
    await record(hostDownEvent(host, { confirmed: false, cause, evidence }));
    return { confirmed: false, decisions: [], rescues: [] };
  }

  async function rescue(decision: RescueDecision, hostName: string): Promise<RescueOutcome> {
    const base = { guestId: decision.guestId, name: decision.name };
    await event('host_down_auto_migrate_start', `guest ${decision.name}: rescue starting`, {
      ...base,
      reason: decision.reason,
    });
    const started = await startHostMigration({
      runKey: key,
      hostId,
      hostName,
      guestId: decision.guestId,
      guestName: decision.name,
      trigger: 'host-down',
      move: { kind: 'rescue', options: { preferHost: null, autoStart: true, rescueMode: true } },
      timings: input.migrationTimings,
    });
    const result = await started.result;
    if (result.outcome === 'completed') {
      await event(
        'host_down_auto_migrate_success',
        `guest ${decision.name} restarted on ${result.destination} (migration ${result.migrationId})`,
        { ...base, migrationId: result.migrationId, destination: result.destination },
      );
      return { ...base, migrationId: result.migrationId, outcome: 'completed', error: null };
    }
    await event(
      'host_down_auto_migrate_fail',
      `guest ${decision.name} not rescued: ${result.error}`,
      { ...base, migrationId: result.migrationId, error: result.error },
      'warning',
    );
    return { ...base, migrationId: result.migrationId, outcome: result.outcome, error: result.error };
  }
}
