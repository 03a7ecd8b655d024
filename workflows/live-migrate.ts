import {
  ApplicationFailure,
  CancellationScope,
  condition,
  isCancellation,
  patched,
  setHandler,
} from '@temporalio/workflow';
import type { MigrationHost } from '../activities/host-snapshots.ts';
import type { MonitorInput, MonitorResult } from '../activities/monitor-migration.ts';
import type { GuestSpec, MigrationStatus } from '../domain/agent-contract.ts';
import type { LiveMigrateOptions, LiveMigrationTimings } from '../domain/live-migration.ts';
import type { LiveMigrationPlan } from '../domain/migration-plan.ts';
import {
  destinationCleanup,
  planForDeadDestination,
  recoveryAfterCopy,
  whereTheGuestRuns,
  type CopyRecovery,
} from '../domain/migration-recovery.ts';
import type { Caller, CheckResult } from '../domain/prechecks.ts';
import { failureReason } from './failure-reason.ts';
import { forceCompleteSignal } from './live-migrate-messages.ts';
import {
  activitySteps,
  agentCalls,
  durable,
  localAgentCalls,
  localDurable,
  localProbe,
  localSteps,
  monitorFor,
  quick,
  watchedFor,
} from './live-migrate-activities.ts';
import { openMigrationRun } from './migration-run.ts';
import {
  endAtPrechecks,
  finishRollback,
  PrecheckError,
  reserveDestinationStep,
  takeMigrationSlot,
} from './migration-steps.ts';

export interface LiveMigrateInput {
  migrationId: string;
  guestId: string;
  options: LiveMigrateOptions;
  caller: Caller;
  timings: LiveMigrationTimings;
}

export interface LiveMigrateResult {
  migrationId: string;
  destination: string;
  downtimeMs: number | null;
  totalTimeMs: number | null;
  /** The copy completed although a cancel or a failure asked to roll back: QEMU had the last word. */
  rolledForward: boolean;
}

class MigrationFailed extends Error {}

/** The patch that made the database-only steps local activities and overlapped the network probe with the slot. */
export const LOCAL_DATABASE_STEPS = 'live-migrate-local-database-steps';

/** The patch that made the prepare and start agent calls local activities (one workflow task up to `migrate`). */
export const LOCAL_AGENT_CALLS = 'live-migrate-local-agent-calls';

/**
 * The patch that made the short agent calls after the copy (the destination's state, the source's clean-up)
 * local activities, run beside the phase write and event they accompany.
 */
export const LOCAL_FINISH = 'live-migrate-local-finish';

/**
 * The patch that starts the destination's QEMU as soon as the destination is chosen, beside the slot and the
 * network probe, and makes it listen once the network is known (a prepare without, then with, a listen address).
 */
export const DESTINATION_STARTED_EARLY = 'live-migrate-destination-started-early';

/**
 * A live migration as a saga: pre-checks, reserve, slot, prepare destination, copy, switch over, verify,
 * commit, clean up. Each step registers its compensation before it can leave work behind; a failure or a
 * cancel before the switch-over asks the source's QEMU what really happened and rolls back, or forward
 * when the copy completed or post-copy began. From the switch-over on nothing is cancellable and every
 * step retries until it succeeds: the guest runs on the destination and the records must say so.
 */
export async function liveMigrate(input: LiveMigrateInput): Promise<LiveMigrateResult> {
  const { migrationId, guestId, options, timings } = input;
  // Runs begun before this change replay with their database steps as activities; new ones run them locally.
  const local = patched(LOCAL_DATABASE_STEPS);
  const run = openMigrationRun(migrationId, timings, local ? localSteps : activitySteps);
  // Runs begun before this change prepare and start through ordinary activities.
  const toMigrate = local && patched(LOCAL_AGENT_CALLS) ? localAgentCalls : agentCalls;
  const { saga, view, enterPhase, event } = run;
  const { decide, write } = run.steps;
  let forceRequested = false;
  setHandler(forceCompleteSignal, () => {
    forceRequested = true;
  });

  // --- pre-checks and reserve: the decisions are activity results, so replay keeps them ------------------
  let source: MigrationHost;
  let destination: MigrationHost;
  let spec: GuestSpec;
  let plan: LiveMigrationPlan;
  let checks: CheckResult[];
  try {
    // planLiveMigration writes the phase itself; runs from before the local steps wrote it first.
    if (local) view.phase = 'prechecks';
    else await enterPhase('prechecks');
    const planned = await decide.planLiveMigration({ migrationId, guestId, options, caller: input.caller });
    if (!planned.ok) throw new PrecheckError(planned.reason, planned.failures, planned.checks);
    ({ source, spec, plan } = planned);
    const reserved = await reserveDestinationStep(run, { guestId, sourceHostId: source.id, options });
    destination = reserved.host;
    checks = [...planned.checks, ...reserved.checks];
  } catch (err) {
    return await endAtPrechecks(run, err);
  }
  // The API hears the verdict at once; with local steps the event is written while the slot is taken.
  const chosen = run.destinationChosen(destination);
  chosen.catch(() => undefined);
  if (!local) await chosen;

  const monitorInput: MonitorInput = {
    migrationId,
    guestId,
    sourceAgentUrl: source.agentUrl,
    downtimeLimitMs: plan.start.downtimeMs,
    quicklyFinish: options.quicklyFinish,
    timings,
    convergence: {
      policy: plan.convergencePolicy,
      context: plan.startContext,
      bandwidthBytes: plan.start.bandwidthBytes,
    },
  };
  let copyStarted = false;
  let incoming: { uri: string; nbdUri: string | null } | null = null;
  let final: MigrationStatus & Partial<MonitorResult>;
  let rolledForward = false;
  // Runs begun before this change start the destination once they hold the slot and know the network.
  const startEarly = toMigrate === localAgentCalls && patched(DESTINATION_STARTED_EARLY);
  let started: Promise<unknown> | null = null;
  let dropped: Promise<void> | null = null;
  try {
    try {
      if (startEarly) {
        // Registered before the call, as the prepare's own: a start that lands late still leaves a QEMU.
        saga.add('clean the destination', () => cleanDestination());
        started = toMigrate.prepareDestination(destinationRequest());
        started.catch(() => undefined);
      }
      // The probe only reads, so it runs while the slot is taken; a migration that had to queue probes again.
      let probing = local ? probeNetwork() : null;
      probing?.catch(() => undefined);
      const waited = await takeSlot();
      await chosen;
      if (waited) probing = null;
      await dropped;
      await prepareDestination(() => probing ?? probeNetwork());
      final = await copy();
    } catch (err) {
      const cancelled = isCancellation(err);
      const reason = cancelled ? 'cancelled by operator' : failureReason(err);
      const recovery = await CancellationScope.nonCancellable(() => recover(reason));
      if (recovery.kind === 'roll-back') {
        await CancellationScope.nonCancellable(() => rollBack(reason, cancelled, recovery));
        if (cancelled) throw err;
        throw ApplicationFailure.nonRetryable(reason, 'LiveMigrationFailed');
      }
      final = await CancellationScope.nonCancellable(() => goForward(recovery, reason, cancelled));
      rolledForward = true;
    }
    return await CancellationScope.nonCancellable(async () => {
      try {
        return await finish(final, rolledForward);
      } catch (err) {
        // Only a refusal retrying cannot fix gets here: the records follow wherever the guest runs.
        const reason = `after the switch-over: ${failureReason(err)}`;
        await followTheGuest(reason);
        throw ApplicationFailure.nonRetryable(reason, 'SwitchOverFailed');
      }
    });
  } finally {
    await saga.compensate();
  }

  // --- the steps ------------------------------------------------------------------------------------------

  /** A slot under the parallel limits; beyond them the migration waits its turn, phase queued. */
  async function takeSlot(): Promise<boolean> {
    return takeMigrationSlot(run, {
      clusterId: source.clusterId,
      sourceHostId: source.id,
      destinationHostId: destination.id,
      limits: plan.limits,
      queueTimeoutMs: plan.queueTimeoutMs,
      checks,
      // The parallel limits hold back the destination too: one started early goes while the migration queues.
      onQueued: () => {
        if (started === null) return;
        dropped = dropEarlyDestination(started);
        started = null;
      },
    });
  }

  /** The destination's guest as the plan wants it; without a listen address it starts but listens nowhere. */
  function destinationRequest(listenAddress?: string) {
    return {
      migrationId,
      agentUrl: destination.agentUrl,
      spec,
      ...(listenAddress !== undefined ? { listenAddress } : {}),
      tls: plan.tls,
      postCopy: plan.start.postCopy,
      // With TLS the destination admits only this host's certificate (QEMU tls-authz).
      sourceHost: source.name,
    };
  }

  /** Never kept for debugging: nothing failed, the migration only waits its turn. */
  async function dropEarlyDestination(start: Promise<unknown>): Promise<void> {
    await start.catch(() => undefined);
    await cleanDestination(false);
  }

  function probeNetwork() {
    return (local ? localProbe : agentCalls).probeMigrationNetwork({ source, destination });
  }

  async function prepareDestination(probe: () => ReturnType<typeof probeNetwork>) {
    const preparing = enterPhase('preparing', { destinationHostId: destination.id, checks });
    preparing.catch(() => undefined);
    // Local steps run side by side; ordinary activities one after the other, as runs before them did.
    if (!local) await preparing;
    const network = await probe();
    await preparing;
    const { choice } = network;
    if (!choice.ok) throw new MigrationFailed(`no usable migration network: ${choice.reason}`);
    const recorded = event(
      choice.warning ? 'migration_network_fallback' : 'migration_network',
      choice.warning ?? `migrating over the ${choice.network} network to ${choice.address}`,
      { network: choice.network, address: choice.address, probes: network.details },
      choice.warning ? 'warning' : 'info',
    );
    if (!local) await recorded;
    saga.add('mark guest running', () => write.markGuestRunning(guestId));
    await Promise.all([recorded, decide.markGuestMigrating(guestId)]);
    // Registered before the call: a prepare that fails half-way, or lands late, still leaves an incoming QEMU.
    if (!startEarly) saga.add('clean the destination', () => cleanDestination());
    // The QEMU started early listens now (or, if that start failed, this prepare starts it afresh).
    await started?.catch(() => undefined);
    incoming = await toMigrate.prepareDestination(destinationRequest(choice.address));
  }

  async function copy(): Promise<MonitorResult> {
    if (!incoming) throw new MigrationFailed('destination not prepared');
    // With local steps the phase is written once the copy started, beside its event: nothing stands between
    // the prepared destination and `migrate`.
    if (!local) await enterPhase('copying');
    copyStarted = true;
    await toMigrate.startSourceMigration({
      agentUrl: source.agentUrl,
      guestId,
      request: {
        migrationId,
        uri: incoming.uri,
        downtimeLimitMs: plan.start.downtimeMs,
        maxBandwidthBytes: plan.start.bandwidthBytes,
        autoConverge: plan.start.autoConverge,
        postCopy: plan.start.postCopy,
        tls: plan.tls,
        // With TLS the destination's certificate must carry its host name.
        ...(plan.tls ? { tlsHostname: destination.name } : {}),
        // Local disks are mirrored to the destination's NBD export before memory moves (block migration).
        ...(incoming.nbdUri ? { nbdUri: incoming.nbdUri } : {}),
        ...(plan.start.xbzrle ? { xbzrle: true } : {}),
        ...(plan.start.cpuThrottleInitial ? { cpuThrottleInitial: plan.start.cpuThrottleInitial } : {}),
        ...(plan.start.cpuThrottleIncrement ? { cpuThrottleIncrement: plan.start.cpuThrottleIncrement } : {}),
      },
    });
    const started = event(
      'copy_started',
      `memory copy to ${destination.name} started${plan.tls ? ' over TLS' : ''}`,
      {
        uri: incoming.uri,
        tls: plan.tls,
        downtimeLimitMs: plan.start.downtimeMs,
        policy: plan.policyName,
        convergence: plan.convergencePolicy.kind,
        start: plan.start,
      },
    );
    await Promise.all([started, local ? enterPhase('copying') : undefined]);
    const result = await monitorWithForceComplete();
    if (result.abortReason) throw new MigrationFailed(`convergence policy gave up: ${result.abortReason}`);
    if (result.status !== 'completed') {
      throw new MigrationFailed(
        `QEMU migration ${result.status}${result.errorDesc ? `: ${result.errorDesc}` : ''}`,
      );
    }
    return result;
  }

  /** Monitors the copy; an operator's force-complete meanwhile switches to post-copy or pauses the guest. */
  async function monitorWithForceComplete(): Promise<MonitorResult> {
    const forceScope = new CancellationScope();
    const forcing = forceScope
      .run(async () => {
        await condition(() => forceRequested);
        await quick.forceCompleteMigration({
          migrationId,
          agentUrl: source.agentUrl,
          guestId,
          postCopyAllowed: plan.start.postCopy,
        });
      })
      .catch((err: unknown) => {
        if (!isCancellation(err)) throw err;
      });
    try {
      return await monitorFor(timings).monitorMigration(monitorInput);
    } finally {
      forceScope.cancel();
      await forcing;
    }
  }

  /** Which copy is valid, from QEMU itself: the cancel may have landed after the copy completed. */
  async function recover(reason: string): Promise<CopyRecovery & { status: MigrationStatus | null }> {
    if (!copyStarted) return { kind: 'roll-back', reason: 'the copy never started', status: null };
    const status = await watchedFor(timings).settleSourceMigration({
      agentUrl: source.agentUrl,
      guestId,
      migrationId,
      destinationAgentUrl: destination.agentUrl,
    });
    const recovery = recoveryAfterCopy(migrationId, status, status.destinationState ?? null);
    await event('recovery', `${reason}: ${recovery.reason}`, {
      decision: recovery.kind,
      source: { ...status },
    });
    return { ...recovery, status };
  }

  /** The cancel or failure came too late: the guest is (or is becoming) the destination's. */
  async function goForward(
    recovery: CopyRecovery & { status: MigrationStatus | null },
    reason: string,
    cancelled: boolean,
  ): Promise<MigrationStatus & Partial<MonitorResult>> {
    if (cancelled) {
      await event('cancel_refused', `cancel refused: ${recovery.reason}`, {}, 'warning');
    }
    let status = recovery.status!;
    if (recovery.kind === 'finish-post-copy' && status.status !== 'completed') {
      status = await monitorFor(timings).monitorMigration({ ...monitorInput, convergence: undefined });
      if (status.status !== 'completed') {
        const lost = `post-copy migration ${status.status}${status.errorDesc ? `: ${status.errorDesc}` : ''} after ${reason}`;
        // Neither host holds a whole guest, unless the destination got it all after all: the records say which.
        await followTheGuest(lost);
        throw ApplicationFailure.nonRetryable(lost, 'PostCopyFailed');
      }
    }
    await event('rolled_forward', `${reason}, but ${recovery.reason}: rolling forward`, {}, 'warning');
    return { ...status, postCopyStarted: recovery.kind === 'finish-post-copy' || status.postCopyStarted };
  }

  /** Switch over, verify, commit, clean up: past the point of no return, every step retries until done. */
  async function finish(
    status: MigrationStatus & Partial<MonitorResult>,
    forward: boolean,
  ): Promise<LiveMigrateResult> {
    // The destination's guest is the valid copy from here: no compensation may destroy it.
    saga.forget('clean the destination');
    // Runs begun before this change wrote each phase before the step it names, and called the agents through
    // ordinary activities; new runs call them locally, beside the phase write (phases are still written in order).
    const overlapped = local && patched(LOCAL_FINISH);
    const afterCopy = overlapped ? localDurable : durable;
    const switchedOver = () =>
      event('switched_over', `switched over to ${destination.name}`, {
        downtimeMs: status.downtimeMs,
        totalTimeMs: status.totalTimeMs,
      });
    const destinationState = () => afterCopy.readGuestState({ agentUrl: destination.agentUrl, guestId });
    let state: Awaited<ReturnType<typeof destinationState>>;
    if (overlapped) {
      [state] = await Promise.all([destinationState(), enterPhase('switching-over'), switchedOver()]);
    } else {
      await enterPhase('switching-over');
      await switchedOver();
      state = await destinationState();
    }
    // A guest paused for the final copy (by a policy, force-complete, or a monitor whose checkpoint was
    // lost) resumes on its new host: the destination's own state says so, not our memory of it.
    if (state === 'paused') {
      await durable.resumeGuestOn({ agentUrl: destination.agentUrl, guestId });
      await event('resumed', `guest resumed on ${destination.name} after the paused final copy`);
    }
    const verifying = enterPhase('verifying');
    if (!overlapped) await verifying;
    const alive = await watchedFor(timings).verifyGuestAlive({
      agentUrl: destination.agentUrl,
      guestId,
      timeoutMs: timings.aliveCheckTimeoutMs,
      pollIntervalMs: timings.pollIntervalMs,
      sourceAgentUrl: source.agentUrl,
    });
    await verifying;
    if (!alive.alive) {
      const dead = planForDeadDestination({
        postCopyStarted: status.postCopyStarted === true,
        keepDestGuestOnFailed: options.keepDestGuestOnFailed,
      });
      const seen = `heartbeat ${alive.firstCounter ?? 'none'} -> ${alive.lastCounter ?? 'none'}, status ${alive.status}`;
      if (dead.kind === 'back-to-source') {
        await backToSource(`destination guest not alive after switch-over (${seen})`, dead.destination);
        throw ApplicationFailure.nonRetryable(
          `destination guest not alive after switch-over (${seen})`,
          'DestinationNotAlive',
        );
      }
      await event(
        'destination_unconfirmed',
        `destination guest not confirmed alive (${seen}); ${dead.reason}`,
        {},
        'warning',
      );
    }
    /** A phase and the step it names: side by side in new runs, one after the other in runs begun before. */
    const phaseWith = async (phase: 'committing' | 'cleaning', step: () => Promise<unknown>) => {
      if (overlapped) await Promise.all([enterPhase(phase), step()]);
      else {
        await enterPhase(phase);
        await step();
      }
    };
    await phaseWith('committing', () =>
      write.commitMigration({ migrationId, guestId, destinationHostId: destination.id }),
    );
    // Committed: the reservation became the guest's own load and the guest row says where it runs.
    saga.forget('release reservation');
    saga.forget('mark guest running');
    await phaseWith('cleaning', () =>
      afterCopy.cleanupSource({ agentUrl: source.agentUrl, guestId, migrationId }),
    );
    const completed = event('completed', `guest runs on ${destination.name}; source ${source.name} cleaned`, {
      downtimeMs: status.downtimeMs,
      totalTimeMs: status.totalTimeMs,
      heartbeat: alive,
      ...(forward ? { rolledForward: true } : {}),
    });
    // Runs begun before gave the slot and the rest back once the event was written.
    if (!overlapped) await completed;
    await Promise.all([completed, saga.compensate()]);
    await enterPhase('completed');
    return {
      migrationId,
      destination: destination.name,
      downtimeMs: status.downtimeMs,
      totalTimeMs: status.totalTimeMs,
      rolledForward: forward,
    };
  }

  /**
   * Pre-copy completed but the destination shows no life: stop the destination first (destroy it, or pause
   * it when kept), and only then resume the source, naming the completed migration so the agent allows it.
   */
  async function backToSource(reason: string, destinationAction: 'destroy' | 'pause') {
    view.error = reason;
    await enterPhase('rolling-back', { error: reason });
    saga.forget('clean the destination');
    const state = await durable.readGuestState({ agentUrl: destination.agentUrl, guestId });
    if (destinationAction === 'pause' && state === 'running') {
      await durable.pauseGuestOn({ agentUrl: destination.agentUrl, guestId });
      await event(
        'dest_guest_kept',
        `destination guest kept paused on ${destination.name} for debugging`,
        {},
        'warning',
      );
    } else if (state !== null && destinationAction === 'destroy') {
      await durable.destroyDestinationGuest({
        agentUrl: destination.agentUrl,
        guestId,
        migrationId,
        expectState: state,
      });
    }
    await durable.resumeSourceGuest({
      agentUrl: source.agentUrl,
      guestId,
      migrationId,
      expectMigrationStatus: 'completed',
    });
    await finishRollback(run, reason, false, `guest keeps running on ${source.name}`);
  }

  async function rollBack(reason: string, cancelled: boolean, recovery: { status: MigrationStatus | null }) {
    view.error = reason;
    await enterPhase('rolling-back', { error: reason });
    // The source holds the only valid copy; a guest paused by a policy or force-complete runs again there.
    const seen = recovery.status;
    if (seen !== null && seen.migrationId === migrationId) {
      const sourceState = await durable.readGuestState({ agentUrl: source.agentUrl, guestId });
      if (sourceState === 'paused') {
        await durable.resumeSourceGuest({
          agentUrl: source.agentUrl,
          guestId,
          migrationId,
          expectMigrationStatus: seen.status,
        });
      }
    }
    await finishRollback(run, reason, cancelled, `guest keeps running on ${source.name}`);
  }

  /** The destination as a rollback finds it: destroyed, or kept for debugging; never a running copy. */
  async function cleanDestination(keep = options.keepDestGuestOnFailed) {
    const state = await durable.readGuestState({ agentUrl: destination.agentUrl, guestId });
    const action = destinationCleanup(state, keep);
    if (action === 'leave-running') {
      await event(
        'dest_guest_running',
        `destination ${destination.name} runs the guest (${state}): a rollback never destroys a running copy`,
        {},
        'error',
      );
    } else if (action === 'destroy' && state !== null) {
      await durable.destroyDestinationGuest({
        agentUrl: destination.agentUrl,
        guestId,
        migrationId,
        expectState: state,
      });
    }
    if (action === 'leave-incoming') {
      await event(
        'dest_guest_kept',
        `destination guest kept on ${destination.name} for debugging`,
        {},
        'warning',
      );
    }
  }

  /**
   * A step past the switch-over was refused, or post-copy failed: record the guest where it really runs (nowhere:
   * the guest row says `error` and both copies are left for an operator), and end the migration.
   */
  async function followTheGuest(reason: string) {
    view.error = reason;
    saga.forget('clean the destination');
    const [onSource, onDestination] = [
      await durable.readGuestState({ agentUrl: source.agentUrl, guestId }),
      await durable.readGuestState({ agentUrl: destination.agentUrl, guestId }),
    ];
    const found = whereTheGuestRuns(onSource, onDestination);
    if (found === 'destination') {
      await write.commitMigration({ migrationId, guestId, destinationHostId: destination.id });
      saga.forget('release reservation');
      saga.forget('mark guest running');
    } else if (found === 'nowhere') {
      saga.forget('mark guest running');
      await write.markGuestError({ guestId, error: reason });
    }
    const leftovers = await saga.compensate();
    await event(
      'switch_over_failed',
      `${reason}; the guest runs ${found === 'nowhere' ? 'nowhere' : `on ${found === 'source' ? source.name : destination.name}`}`,
      { found, source: onSource, destination: onDestination, leftovers },
      'error',
    );
    await enterPhase('failed', { error: reason });
  }
}
