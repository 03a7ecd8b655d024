import { proxyActivities, workflowInfo } from '@temporalio/workflow';
import type { Activities } from '../activities/index.ts';
import { evacuationSummary, type EvacuationOutcome, type EvacuationStep } from '../domain/evacuation.ts';
import type { LiveMigrationTimings } from '../domain/live-migration.ts';
import type { Requester } from '../domain/requester.ts';
import { startHostMigration, type HostMigrationResult } from './host-migration-child.ts';
import { hostEventLog } from './host-event-log.ts';

const { planHostEvacuation } = proxyActivities<Activities>({
  startToCloseTimeout: '30 seconds',
  retry: { initialInterval: '1 second', maximumInterval: '10 seconds' },
});

export interface EvacuateHostInput {
  hostId: string;
  migrationTimings: LiveMigrationTimings;
  /** Who put the host in maintenance: the requester of every move. Absent in runs started before it was passed. */
  requestedBy?: Requester;
}

/**
 * Maintenance: the API has taken the host out of scheduling; this run empties it. Running guests live-migrate,
 * stopped ones move cold, all started at once in priority order so the parallel limits queue them (queued,
 * not failed) and serve the important ones first; what cannot move says why. Every outcome is a host event.
 */
export async function evacuateHost(input: EvacuateHostInput): Promise<EvacuationOutcome[]> {
  const { hostId } = input;
  const key = workflowInfo().workflowId;
  const { event } = hostEventLog(hostId);

  const { hostName, steps } = await planHostEvacuation(hostId);
  await event(
    'evacuation_started',
    `host ${hostName} entered maintenance: ${steps.filter((s) => s.kind !== 'stays').length} of ${steps.length} guest(s) to move`,
    { steps },
  );
  // Started one after another, highest priority first, so their slots are asked for in that order; then awaited
  // together, the parallel limits queueing what does not fit.
  const ends: Promise<EvacuationOutcome>[] = [];
  for (const step of steps) ends.push((await evacuate(step, hostName)).end);
  const outcomes = await Promise.all(ends);
  await event('evacuation_completed', evacuationSummary(hostName, outcomes), { outcomes });
  return outcomes;

  /** Starts the step's move; `end` settles with its outcome. */
  async function evacuate(
    step: EvacuationStep,
    hostName: string,
  ): Promise<{ end: Promise<EvacuationOutcome> }> {
    const base = { guestId: step.guestId, name: step.name, kind: step.kind };
    if (step.kind === 'stays') {
      return {
        end: Promise.resolve({ ...base, outcome: 'stays' as const, destination: null, reason: step.reason }),
      };
    }
    const started = await startHostMigration({
      runKey: key,
      hostId,
      hostName,
      guestId: step.guestId,
      guestName: step.name,
      trigger: 'maintenance',
      move:
        step.kind === 'live'
          ? { kind: 'live' }
          : { kind: 'cold', options: { preferHost: null, autoStart: false, rescueMode: false } },
      timings: input.migrationTimings,
      ...(input.requestedBy ? { requestedBy: input.requestedBy } : {}),
    });
    return { end: started.result.then((result) => recordOutcome(step, result)) };
  }

  async function recordOutcome(
    step: EvacuationStep,
    result: HostMigrationResult,
  ): Promise<EvacuationOutcome> {
    const base = { guestId: step.guestId, name: step.name, kind: step.kind };
    if (result.outcome === 'completed') {
      await event('evacuation_moved', `guest ${step.name} moved (${step.kind}) to ${result.destination}`, {
        ...base,
        migrationId: result.migrationId,
        destination: result.destination,
      });
      return { ...base, outcome: 'moved', destination: result.destination, reason: null };
    }
    await event(
      'evacuation_failed',
      `guest ${step.name} did not move (${step.kind}): ${result.error}`,
      { ...base, migrationId: result.migrationId, error: result.error },
      'warning',
    );
    return { ...base, outcome: 'failed', destination: null, reason: result.error };
  }
}
