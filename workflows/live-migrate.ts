import {
  ActivityCancellationType,
  ApplicationFailure,
  CancellationScope,
  condition,
  getExternalWorkflowHandle,
  isCancellation,
  proxyActivities,
  setHandler,
  upsertSearchAttributes,
  patched,
  workflowInfo,
} from '@temporalio/workflow';
import type { Activities } from '../activities/index.ts';
import type { MigrationHost } from '../activities/host-snapshots.ts';
import type { GuestSpec } from '../domain/agent-contract.ts';
import {
  bandwidthBytesPerSecond,
  DEFAULT_DOWNTIME_LIMIT_MS,
  type LiveMigrateOptions,
  type LiveMigrationTimings,
  type MigrationProgress,
} from '../domain/live-migration.ts';
import { chooseDestination } from '../domain/placement.ts';
import { failed, guestAndSourceChecks, type Caller, type CheckResult } from '../domain/prechecks.ts';
import { failureReason } from './failure-reason.ts';
import {
  forceCompleteSignal,
  precheckUpdate,
  progressQuery,
  progressSignal,
  type LiveMigrationPhase,
  type LiveMigrationView,
  type PrecheckAnswer,
} from './live-migrate-messages.ts';
import { DestinationHostKey } from './search-attributes.ts';
import { releaseSlotSignal, slotGrantedSignal } from './migration-slots-messages.ts';
import { DEFAULT_SLOT_LIMITS } from '../domain/slots.ts';
import { migrationSlotsWorkflowId } from '../domain/workflow-ids.ts';
import type { MonitorInput, MonitorResult } from '../activities/monitor-migration.ts';
import { planLiveMigration, type LiveMigrationPlan } from '../domain/migration-plan.ts';
import { chooseMigrationNetwork } from '../domain/migration-network.ts';

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
}

/** Runs from this change on take a slot from the cluster's migrationSlots workflow before preparing. */
const PATCH_MIGRATION_SLOTS = 'migration-slots';
/** Runs from this change on resolve the cluster config and policy, and let the convergence engine drive. */
const PATCH_CONVERGENCE_ENGINE = 'convergence-engine';
/** Runs from this change on probe and choose the migration network before preparing the destination. */
const PATCH_MIGRATION_NETWORK = 'migration-network';

/** How many destinations we try when a chosen one's capacity was taken between the read and the reservation. */
const MAX_RESERVATION_ATTEMPTS = 3;

const quick = proxyActivities<Activities>({
  startToCloseTimeout: '30 seconds',
  retry: { initialInterval: '500 milliseconds', maximumInterval: '5 seconds', maximumAttempts: 10 },
});
const agentCalls = proxyActivities<Activities>({
  startToCloseTimeout: '2 minutes',
  retry: { initialInterval: '1 second', maximumInterval: '10 seconds', maximumAttempts: 6 },
});

class MigrationFailed extends Error {}

export async function liveMigrate(input: LiveMigrateInput): Promise<LiveMigrateResult> {
  const { migrationId, guestId, options, timings } = input;
  const view: LiveMigrationView = {
    migrationId,
    phase: 'prechecks',
    destination: null,
    progress: null,
    error: null,
  };
  let precheck: PrecheckAnswer | null = null;
  let holdsSlots = false;
  let forceRequested = false;
  let forced: 'start-post-copy' | 'pause-guest' | null = null;
  setHandler(forceCompleteSignal, () => {
    forceRequested = true;
  });
  let slotRequested = false;
  let slotGranted = false;
  setHandler(slotGrantedSignal, () => {
    slotGranted = true;
  });
  setHandler(progressQuery, () => view);
  setHandler(progressSignal, (progress: MigrationProgress) => {
    view.progress = progress;
  });
  setHandler(precheckUpdate, async () => {
    await condition(() => precheck !== null);
    return precheck as PrecheckAnswer;
  });

  const enterPhase = async (
    phase: LiveMigrationPhase,
    extra: { destinationHostId?: string; error?: string; checks?: CheckResult[] } = {},
  ) => {
    await quick.setMigrationPhase({ migrationId, phase, ...extra });
    // The query follows the row rather than leading it, so a reader never sees a phase the record lacks.
    view.phase = phase;
  };
  const event = (
    type: string,
    message: string,
    data?: Record<string, unknown>,
    level?: 'info' | 'warning' | 'error',
  ) => quick.recordMigrationEvent({ migrationId, type, message, data, level });

  // --- pre-checks and destination (nothing to undo yet) -------------------------------------------------
  let source: MigrationHost;
  let destination: MigrationHost;
  let spec: GuestSpec;
  let checks: CheckResult[];
  /** Null in runs started before the convergence engine: they run on the fixed legacy settings. */
  let plan: LiveMigrationPlan | null = null;
  try {
    await enterPhase('prechecks');
    const context = await quick.readPlacementContext(guestId);
    spec = context.spec;
    if (patched(PATCH_CONVERGENCE_ENGINE)) {
      const settings = await quick.resolveMigrationSettings(guestId);
      plan = planLiveMigration(settings, options, context.guest);
      await quick.setMigrationPhase({
        migrationId,
        phase: 'prechecks',
        resolvedPolicy: { ...settings, plan: { ...plan } },
      });
    }
    const baseChecks = guestAndSourceChecks({
      caller: input.caller,
      guest: context.guest,
      source: context.source,
      options,
    });
    const baseFailures = failed(baseChecks);
    if (baseFailures.length > 0 || !context.source) {
      throw precheckFailure(baseFailures, baseChecks);
    }
    source = context.source;
    const chosen = await reserveADestination(context.hosts, context.guest, source);
    destination = chosen.host;
    checks = [...baseChecks, ...chosen.checks];
    holdsSlots = patched(PATCH_MIGRATION_SLOTS);
    // Runs started before parallel limits existed recorded the preparing phase here.
    if (!holdsSlots) await enterPhase('preparing', { destinationHostId: destination.id, checks });
  } catch (err) {
    const reason = err instanceof PrecheckError ? err.message : failureReason(err);
    const failures = err instanceof PrecheckError ? err.failures : [];
    view.error = reason;
    // Recorded before the API hears the verdict, so whoever reads the row next sees it failed.
    await CancellationScope.nonCancellable(async () => {
      await quick.releaseDestination(migrationId);
      await event('precheck_failed', reason, failures.length > 0 ? { failures } : undefined, 'error');
      await enterPhase(isCancellation(err) ? 'cancelled' : 'failed', {
        error: reason,
        ...(err instanceof PrecheckError ? { checks: err.checks } : {}),
      });
    });
    precheck = { ok: false, reason, failures };
    if (isCancellation(err)) throw err;
    throw ApplicationFailure.nonRetryable(reason, 'PrecheckFailed');
  }
  precheck = { ok: true, destination: { id: destination.id, name: destination.name } };
  view.destination = precheck.destination;
  upsertSearchAttributes([{ key: DestinationHostKey, value: destination.name }]);
  await event('destination_chosen', `destination ${destination.name}`, { destination: destination.name });

  const migrateHoldingSlot = async (): Promise<LiveMigrateResult> => {
    // --- preparation and memory copy (any failure rolls back) ---------------------------------------------
    const downtimeLimitMs = plan?.start.downtimeMs ?? DEFAULT_DOWNTIME_LIMIT_MS;
    const tls = plan?.tls ?? options.enableTls;
    const postCopy = plan?.start.postCopy ?? false;
    const monitorInput: MonitorInput = {
      migrationId,
      guestId,
      sourceAgentUrl: source.agentUrl,
      downtimeLimitMs,
      quicklyFinish: options.quicklyFinish,
      timings,
      slot: { workflowId: migrationSlotsWorkflowId(source.clusterId), leaseMs: timings.slotLeaseMs },
      ...(plan
        ? {
            convergence: {
              policy: plan.convergencePolicy,
              context: plan.startContext,
              bandwidthBytes: plan.start.bandwidthBytes,
            },
          }
        : {}),
    };
    let final: MonitorResult;
    try {
      if (holdsSlots) await waitForSlot();
      const listenAddress = patched(PATCH_MIGRATION_NETWORK) ? await chooseNetwork() : destination.address;
      await quick.markGuestMigrating(guestId);
      const incoming = await agentCalls.prepareDestination({
        migrationId,
        agentUrl: destination.agentUrl,
        spec,
        listenAddress,
        tls,
        postCopy,
      });
      await enterPhase('copying');
      await agentCalls.startSourceMigration({
        agentUrl: source.agentUrl,
        guestId,
        request: {
          migrationId,
          uri: incoming.uri,
          downtimeLimitMs,
          maxBandwidthBytes: plan?.start.bandwidthBytes ?? bandwidthBytesPerSecond(options.maxBandwidthMb),
          autoConverge: plan?.start.autoConverge ?? options.quicklyFinish,
          postCopy,
          tls,
          // Local disks are mirrored to the destination's NBD export before memory moves (block migration).
          ...(incoming.nbdUri ? { nbdUri: incoming.nbdUri } : {}),
          ...(plan?.start.xbzrle ? { xbzrle: true } : {}),
          ...(plan?.start.cpuThrottleInitial ? { cpuThrottleInitial: plan.start.cpuThrottleInitial } : {}),
          ...(plan?.start.cpuThrottleIncrement
            ? { cpuThrottleIncrement: plan.start.cpuThrottleIncrement }
            : {}),
        },
      });
      await event('copy_started', `memory copy to ${destination.name} started`, {
        uri: incoming.uri,
        downtimeLimitMs,
        ...(plan
          ? { policy: plan.policyName, convergence: plan.convergencePolicy.kind, start: plan.start }
          : {}),
      });
      final = await monitorWithForceComplete(monitorInput, postCopy);
      if (final.abortReason) throw new MigrationFailed(`convergence policy gave up: ${final.abortReason}`);
      if (final.status !== 'completed') {
        throw new MigrationFailed(
          `QEMU migration ${final.status}${final.errorDesc ? `: ${final.errorDesc}` : ''}`,
        );
      }
    } catch (err) {
      const cancelled = isCancellation(err);
      if (cancelled && postCopyUnderway()) {
        // Post-copy splits the guest's memory between both hosts: there is no source left to go back to.
        final = await CancellationScope.nonCancellable(async () => {
          await event(
            'cancel_refused',
            'cancel refused: post-copy is under way and must finish',
            {},
            'warning',
          );
          return monitor(monitorInput);
        });
        if (final.status !== 'completed') {
          const reason = `post-copy migration ${final.status}${final.errorDesc ? `: ${final.errorDesc}` : ''}`;
          await CancellationScope.nonCancellable(() => enterPhase('failed', { error: reason }));
          throw ApplicationFailure.nonRetryable(reason, 'PostCopyFailed');
        }
      } else {
        const reason = cancelled ? 'cancelled by operator' : failureReason(err);
        await CancellationScope.nonCancellable(() => rollBack(reason, cancelled));
        if (cancelled) throw err;
        throw ApplicationFailure.nonRetryable(reason, 'LiveMigrationFailed');
      }
    }

    // --- after switch-over: the guest runs on the destination; nothing here may be cancelled ---------------
    return CancellationScope.nonCancellable(async () => {
      await enterPhase('verifying');
      await event('switched_over', `switched over to ${destination.name}`, {
        downtimeMs: final.downtimeMs,
        totalTimeMs: final.totalTimeMs,
      });
      if (final.pausedGuest || forced === 'pause-guest') {
        // Paused to let the copy finish: QEMU carries that state over, so the guest resumes on its new host.
        await agentCalls.resumeGuestOn({ agentUrl: destination.agentUrl, guestId });
        await event('resumed', `guest resumed on ${destination.name} after the paused final copy`);
      }
      const alive = await agentCalls.verifyGuestAlive({
        agentUrl: destination.agentUrl,
        guestId,
        timeoutMs: timings.aliveCheckTimeoutMs,
        pollIntervalMs: timings.pollIntervalMs,
        sourceAgentUrl: source.agentUrl,
      });
      if (!alive.alive) {
        const reason = `destination guest not alive after switch-over (heartbeat ${alive.firstCounter ?? 'none'} -> ${alive.lastCounter ?? 'none'}, status ${alive.status}); source resumed`;
        await agentCalls.resumeSourceGuest({ agentUrl: source.agentUrl, guestId });
        await rollBack(reason, false, { sourceAlreadyResumed: true });
        throw ApplicationFailure.nonRetryable(reason, 'DestinationNotAlive');
      }
      await enterPhase('committing');
      await quick.commitMigration({ migrationId, guestId, destinationHostId: destination.id });
      await enterPhase('cleaning');
      await agentCalls.cleanupSource({ agentUrl: source.agentUrl, guestId, migrationId });
      await event('completed', `guest runs on ${destination.name}; source ${source.name} cleaned`, {
        downtimeMs: final.downtimeMs,
        totalTimeMs: final.totalTimeMs,
        heartbeat: alive,
      });
      await enterPhase('completed');
      return {
        migrationId,
        destination: destination.name,
        downtimeMs: final.downtimeMs,
        totalTimeMs: final.totalTimeMs,
      };
    });
  };

  try {
    return await migrateHoldingSlot();
  } finally {
    if (slotRequested) {
      // Released whatever happened, so the next waiter in the cluster can start.
      await CancellationScope.nonCancellable(() =>
        getExternalWorkflowHandle(migrationSlotsWorkflowId(source.clusterId))
          .signal(releaseSlotSignal, { migrationId })
          .catch(() => undefined),
      );
    }
  }

  /** The dedicated migration network when both hosts have one the source reaches; else management, said aloud. */
  async function chooseNetwork(): Promise<string> {
    const reach = await agentCalls.probeMigrationNetwork({ source, destination });
    const choice = chooseMigrationNetwork(source, destination, reach);
    if (!choice.ok) throw new MigrationFailed(`no usable migration network: ${choice.reason}`);
    await event(
      choice.warning ? 'migration_network_fallback' : 'migration_network',
      choice.warning ?? `migrating over the ${choice.network} network to ${choice.address}`,
      { network: choice.network, address: choice.address, probes: reach.details },
      choice.warning ? 'warning' : 'info',
    );
    return choice.address;
  }

  /** Monitors the copy; an operator's force-complete meanwhile switches to post-copy or pauses the guest. */
  async function monitorWithForceComplete(monitorInput: MonitorInput, postCopyAllowed: boolean) {
    const forceScope = new CancellationScope();
    const forcing = forceScope
      .run(async () => {
        await condition(() => forceRequested);
        const result = await quick.forceCompleteMigration({
          migrationId,
          agentUrl: source.agentUrl,
          guestId,
          postCopyAllowed,
        });
        if (result.action !== 'none') forced = result.action;
      })
      .catch((err: unknown) => {
        if (!isCancellation(err)) throw err;
      });
    try {
      return await monitor(monitorInput);
    } finally {
      forceScope.cancel();
      await forcing;
    }
  }

  function postCopyUnderway(): boolean {
    return forced === 'start-post-copy' || view.progress?.status === 'postcopy-active';
  }

  /** A slot under the parallel limits; beyond them the migration waits its turn, phase queued. */
  async function waitForSlot() {
    // Marked first: releasing a slot never granted is harmless, holding one never released is not.
    slotRequested = true;
    const answer = await quick.acquireMigrationSlot({
      clusterId: source.clusterId,
      migrationId,
      workflowId: workflowInfo().workflowId,
      sourceHostId: source.id,
      destinationHostId: destination.id,
      limits: plan?.limits ?? DEFAULT_SLOT_LIMITS,
      leaseMs: timings.slotLeaseMs,
    });
    if (!answer.granted) {
      await enterPhase('queued', { destinationHostId: destination.id, checks });
      await event('queued', `waiting for a migration slot, position ${answer.position}`, {
        position: answer.position,
        limits: plan?.limits ?? DEFAULT_SLOT_LIMITS,
      });
      await condition(() => slotGranted);
      await event('slot_granted', 'migration slot granted');
    }
    await enterPhase('preparing', { destinationHostId: destination.id, checks });
  }

  async function reserveADestination(
    hosts: MigrationHost[],
    guest: Parameters<typeof chooseDestination>[0],
    from: MigrationHost,
  ) {
    let candidates = hosts;
    const preferred = options.preferHost
      ? hosts.find((h) => h.id === options.preferHost || h.name === options.preferHost)
      : undefined;
    if (options.preferHost && !preferred) {
      const missing: CheckResult = {
        name: 'destination_host_usable',
        ok: false,
        message: `prefer_host '${options.preferHost}' does not exist`,
        values: { host: options.preferHost },
      };
      throw precheckFailure([missing], [missing]);
    }
    for (let attempt = 1; attempt <= MAX_RESERVATION_ATTEMPTS; attempt++) {
      const choice = chooseDestination(guest, from, candidates, options, preferred);
      if (!choice.ok) {
        const failures = choice.rejected.flatMap((r) => r.failures);
        throw new PrecheckError(choice.reason, failures, failures);
      }
      const host = choice.destination as MigrationHost;
      const outcome = await quick.reserveDestination({
        migrationId,
        hostId: host.id,
        memoryMb: guest.memoryMb,
        vcpus: guest.vcpus,
      });
      if (outcome.reserved) return { host, checks: choice.checks };
      await event('reservation_refused', `capacity on ${host.name} was taken meanwhile`, { ...outcome });
      candidates = candidates.filter((h) => h.id !== host.id);
      if (preferred) break;
    }
    const failure: CheckResult = {
      name: 'destination_capacity',
      ok: false,
      message: 'capacity on the chosen destinations was taken by other migrations',
      values: { attempts: MAX_RESERVATION_ATTEMPTS },
    };
    throw precheckFailure([failure], [failure]);
  }

  async function rollBack(reason: string, cancelled: boolean, opts: { sourceAlreadyResumed?: boolean } = {}) {
    view.error = reason;
    await enterPhase('rolling-back', { error: reason });
    // Every undo step is tried even when an earlier one failed: a half-done rollback is worse than a noisy one.
    const leftovers: string[] = [];
    const step = async (name: string, fn: () => Promise<unknown>) => {
      try {
        await fn();
      } catch (err) {
        leftovers.push(`${name}: ${failureReason(err)}`);
      }
    };
    if (!opts.sourceAlreadyResumed) {
      await step('cancel source migration', () =>
        agentCalls.cancelSourceMigration({ agentUrl: source.agentUrl, guestId }),
      );
      await step('resume source guest', () =>
        agentCalls.resumeSourceGuest({ agentUrl: source.agentUrl, guestId }),
      );
    }
    if (options.keepDestGuestOnFailed) {
      await event(
        'dest_guest_kept',
        `destination guest kept on ${destination.name} for debugging`,
        {},
        'warning',
      );
    } else {
      await step('destroy destination guest', () =>
        agentCalls.destroyDestinationGuest({ agentUrl: destination.agentUrl, guestId, migrationId }),
      );
    }
    await step('release reservation', () => quick.releaseDestination(migrationId));
    await step('mark guest running', () => quick.markGuestRunning(guestId));
    if (leftovers.length > 0) {
      await event(
        'rollback_incomplete',
        `rollback left work undone: ${leftovers.join('; ')}`,
        { leftovers },
        'error',
      );
    }
    await event(
      cancelled ? 'cancelled' : 'failed',
      `${reason}; guest keeps running on ${source.name}`,
      {},
      'error',
    );
    await enterPhase(cancelled ? 'cancelled' : 'failed', { error: reason });
  }
}

class PrecheckError extends Error {
  constructor(
    message: string,
    readonly failures: CheckResult[],
    readonly checks: CheckResult[],
  ) {
    super(message);
  }
}

function precheckFailure(failures: CheckResult[], checks: CheckResult[]): PrecheckError {
  const reason = failures.map((f) => `${f.name}: ${f.message}`).join('; ') || 'source host not found';
  return new PrecheckError(`pre-checks failed: ${reason}`, failures, checks);
}

function monitor(input: MonitorInput): Promise<MonitorResult> {
  const { monitorMigration } = proxyActivities<Activities>({
    startToCloseTimeout: '24 hours',
    heartbeatTimeout: input.timings.activityHeartbeatTimeoutMs,
    cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
    retry: { initialInterval: '1 second', maximumInterval: '10 seconds', maximumAttempts: 20 },
  });
  return monitorMigration(input);
}
