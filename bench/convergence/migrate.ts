import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { QemuDriver } from '../../agent/drivers/qemu.ts';
import type { RunningAgent } from '../../agent/start-agent.ts';
import { AgentClient } from '../../activities/agent-client.ts';
import { applyConvergenceAction, type AppliedState } from '../../activities/convergence-actions.ts';
import type { GuestState, MigrationStatus, StartMigrationRequest } from '../../domain/agent-contract.ts';
import {
  decide,
  startParameters,
  type ConvergenceAction,
  type ConvergenceState,
} from '../../domain/convergence/index.ts';
import { guestSpec, MIB, type Contender } from './scenario.ts';

export interface Host {
  name: string;
  agent: RunningAgent;
  client: AgentClient;
  dir: string;
}

export interface ActionRecord {
  /** ms after migrate, QEMU's total-time as the engine saw it. */
  atMs: number;
  type: ConvergenceAction['type'] | 'bench-cancel';
  reason: string;
  error: string | null;
  /** The sample the action was decided on: what was pending, what had been sent. */
  remainingBytes: number;
  transferredBytes: number;
}

export type Outcome = 'completed' | 'aborted' | 'stopped-by-bench' | 'failed';

export interface RunResult {
  key: Contender['key'];
  round: number;
  outcome: Outcome;
  /** `migrate` issued on the source (agent's startedAt) -> first poll that saw the end. */
  wallMs: number;
  /** QEMU's total-time (completed migrations). */
  qemuTotalMs: number | null;
  /** QEMU's downtime (completed migrations). */
  downtimeMs: number | null;
  /** RAM bytes sent: QEMU's final figure, or the last one seen before a cancel (QEMU drops them then). */
  transferredBytes: number;
  passes: number;
  /** ms after migrate at which each pass was first seen running (index 0: pass 1, the bulk copy). */
  passStartsMs: number[];
  samples: number;
  actions: ActionRecord[];
  /** When the decisive action (post-copy, pause, abort, bench stop) was taken, ms after migrate. */
  decisiveAtMs: number | null;
  /** The guest's dirty rate, QEMU calc-dirty-rate (page sampling, 1 s), MiB/s: before migrate, and during. */
  probeBeforeMibs: number | null;
  probeDuringMibs: number | null;
  /** Highest dirty-pages-rate QEMU reported at its syncs, MiB/s. */
  qemuDirtyMaxMibs: number;
  /** Where the guest runs afterwards, and whether its heartbeat advances there. */
  runsOn: string;
  guestStatus: string;
  heartbeat: { from: number; to: number } | null;
  advancing: boolean;
  /** "DIRTIER CORRUPT" / "Kernel panic" lines in either serial log. */
  corruption: string[];
  errorDesc: string | null;
}

export interface RunOptions {
  round: number;
  /** Stop a migration still running this many seconds after migrate (0 = no limit). */
  limitSeconds: number;
  log: (line: string) => void;
}

const terminal = new Set(['completed', 'failed', 'cancelled']);
const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
const errorText = (error: unknown) => (error instanceof Error ? error.message : String(error));

async function until<T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${seconds(timeoutMs)} waiting for ${what}`);
    await sleep(250);
  }
}

const serialLog = (host: Host, id: string) =>
  readFile(path.join(host.dir, 'guests', id, 'serial.log'), 'latin1').catch(() => '');

/** One calc-dirty-rate measurement in QEMU's page-sampling mode (the dirty-bitmap mode crashes 7.2 TCG). */
async function dirtyRateProbe(host: Host, id: string): Promise<number | null> {
  const driver = host.agent.driver as QemuDriver;
  try {
    await driver.humanMonitorCommand(id, 'calc_dirty_rate 1 4096');
    return await until('calc-dirty-rate', 5_000, async () => {
      await sleep(300);
      const info = await driver.humanMonitorCommand(id, 'info dirty_rate');
      if (!/Status: measured/.test(info)) return undefined;
      const rate = /Dirty rate: (\d+)/.exec(info)?.[1];
      return rate === undefined ? null : Number(rate);
    });
  } catch {
    return null;
  }
}

async function heartbeatAdvancing(
  host: Host,
  id: string,
  beats: number,
  timeoutMs: number,
): Promise<{ from: number; to: number } | null> {
  try {
    const first = await until(`a heartbeat on ${host.name}`, timeoutMs, async () => {
      const beat = (await host.client.getGuest(id)).heartbeat;
      return beat ?? undefined;
    });
    const last = await until(`the heartbeat on ${host.name} to advance`, timeoutMs, async () => {
      const beat = (await host.client.getGuest(id)).heartbeat;
      return beat !== null && beat.counter >= first.counter + beats ? beat : undefined;
    });
    return { from: first.counter, to: last.counter };
  } catch {
    return null;
  }
}

/** Boots the guest on `source` and waits until the dirtier runs (two heartbeats). */
export async function bootGuest(source: Host, id: string, mac: string): Promise<void> {
  const spec = guestSpec(id, mac);
  await source.client.defineGuest(spec);
  await source.client.startGuest(id);
  const beat = await heartbeatAdvancing(source, id, 2, 60_000);
  if (beat === null) throw new Error(`guest ${id} did not boot on ${source.name} within 60 s`);
}

/**
 * One migration of the guest from `source` to `destination` under a contender's policy, driven as the
 * monitor activity drives it: start parameters from the engine, every sample through `decide`, every
 * action through the production applier (activities/convergence-actions.ts) over the agent's HTTP API.
 */
export async function migrateOnce(
  contender: Contender,
  source: Host,
  destination: Host,
  id: string,
  options: RunOptions,
): Promise<RunResult> {
  const { log } = options;
  const tag = `${contender.key} #${options.round}`;
  const spec = (await source.client.getGuest(id)).spec;
  const params = startParameters(contender.policy, contender.context);
  const probeBeforeMibs = await dirtyRateProbe(source, id);

  const migrationId = `bench-${id}`;
  const incoming = await destination.client.prepareIncoming(id, {
    migrationId,
    spec,
    listenAddress: '127.0.0.1',
    tls: false,
    postCopy: params.postCopy,
  });
  const request: StartMigrationRequest = {
    migrationId,
    uri: incoming.uri,
    downtimeLimitMs: params.downtimeMs,
    maxBandwidthBytes: params.bandwidthBytes,
    autoConverge: params.autoConverge,
    postCopy: params.postCopy,
    tls: false,
    xbzrle: params.xbzrle,
    ...(params.cpuThrottleInitial === null ? {} : { cpuThrottleInitial: params.cpuThrottleInitial }),
    ...(params.cpuThrottleIncrement === null ? {} : { cpuThrottleIncrement: params.cpuThrottleIncrement }),
  };
  const started = await source.client.startMigration(id, request);
  const t0 = started.startedAt ?? Date.now();
  log(
    `  [${tag}] migrate: downtime ${params.downtimeMs} ms, cap ${params.bandwidthBytes / MIB} MiB/s, ` +
      `post-copy ${params.postCopy ? 'on' : 'off'}, auto-converge ${params.autoConverge ? 'on' : 'off'}` +
      ` (guest dirty rate before: ${probeBeforeMibs ?? '?'} MiB/s)`,
  );

  let engine: ConvergenceState | null = null;
  let applied: AppliedState = {
    downtimeMs: params.downtimeMs,
    bandwidthBytes: params.bandwidthBytes,
    pausedGuest: false,
    postCopyStarted: false,
    abortReason: null,
  };
  const actions: ActionRecord[] = [];
  let decisiveAtMs: number | null = null;
  let lastActive: MigrationStatus | null = null;
  let samples = 0;
  let qemuDirtyMax = 0;
  const passStartsMs: number[] = [];
  let benchStopped = false;
  let probeDuring: Promise<number | null> | null = null;
  let final: MigrationStatus;
  let endAt: number;

  for (;;) {
    const tick = Date.now();
    const status = await source.client.migrationStatus(id);
    samples++;
    if (terminal.has(status.status)) {
      endAt = Date.now();
      final = status;
      break;
    }
    lastActive = status;
    qemuDirtyMax = Math.max(qemuDirtyMax, (status.dirtyPagesRate * (status.pageSize || 4096)) / MIB);
    // QEMU's own clock since migrate, as the monitor activity uses.
    const atMs = status.totalTimeMs ?? Date.now() - t0;
    while (status.status === 'active' && passStartsMs.length < status.dirtySyncCount) passStartsMs.push(atMs);

    if (options.limitSeconds > 0 && atMs > options.limitSeconds * 1000 && !benchStopped) {
      benchStopped = true;
      decisiveAtMs ??= atMs;
      const reason = `bench limit ${options.limitSeconds} s reached, migration still ${status.status}: cancelling`;
      let error: string | null = null;
      if (status.status === 'active') {
        await source.client.cancelMigration(id).catch((e: unknown) => (error = errorText(e)));
      } else {
        error = `cannot cancel in ${status.status}; waiting for the end`;
      }
      actions.push({
        atMs,
        type: 'bench-cancel',
        reason,
        error,
        remainingBytes: status.remainingBytes,
        transferredBytes: status.transferredBytes,
      });
      log(`  [${tag}] ${seconds(atMs)} bench-cancel: ${reason}${error ? ` (${error})` : ''}`);
      continue;
    }
    // A time-based policy's guest keeps dirtying for minutes: look at what it achieves during the copy.
    if (
      probeDuring === null &&
      contender.key !== 'predictive' &&
      atMs > 30_000 &&
      status.status === 'active'
    ) {
      probeDuring = dirtyRateProbe(source, id);
    }

    const decision = decide(
      contender.policy,
      engine,
      { atMs, status },
      {
        ...contender.context,
        currentDowntimeMs: applied.downtimeMs,
        currentBandwidthBytes: applied.bandwidthBytes,
      },
    );
    engine = decision.state;
    for (const action of decision.actions) {
      let error: string | null = null;
      try {
        applied = await applyConvergenceAction(source.client, id, action, applied);
      } catch (e) {
        error = errorText(e);
      }
      actions.push({
        atMs,
        type: action.type,
        reason: action.reason,
        error,
        remainingBytes: status.remainingBytes,
        transferredBytes: status.transferredBytes,
      });
      if (['start-post-copy', 'pause-guest', 'abort'].includes(action.type)) decisiveAtMs ??= atMs;
      log(
        `  [${tag}] ${seconds(atMs)} pass ${status.dirtySyncCount} ${action.type}: ${action.reason}` +
          (error ? ` -- FAILED: ${error}` : ''),
      );
      if (action.type === 'abort') break;
    }
    await sleep(Math.max(0, contender.pollMs - (Date.now() - tick)));
  }

  const wallMs = endAt - t0;
  const outcome: Outcome =
    final.status === 'completed'
      ? 'completed'
      : final.status === 'cancelled'
        ? benchStopped
          ? 'stopped-by-bench'
          : 'aborted'
        : 'failed';
  log(
    `  [${tag}] ${final.status} after ${seconds(wallMs)}` +
      (final.downtimeMs !== null ? `, downtime ${final.downtimeMs} ms` : '') +
      (final.errorDesc ? `: ${final.errorDesc}` : ''),
  );

  // Where the guest should run now, and is it alive there?
  const home = outcome === 'completed' ? destination : source;
  let guest: GuestState | null = null;
  try {
    guest = await until(`the guest to settle on ${home.name}`, 30_000, async () => {
      const g = await home.client.getGuest(id);
      return g.status === 'running' || g.status === 'paused' ? g : undefined;
    });
    if (guest.status === 'paused' && applied.pausedGuest) {
      guest = await home.client.resumeGuest(id);
    }
  } catch (e) {
    log(`  [${tag}] WARNING: ${errorText(e)}`);
  }
  const heartbeat = await heartbeatAdvancing(home, id, 3, 15_000);
  const logs = `${await serialLog(source, id)}\n${await serialLog(destination, id)}`;
  const corruption = logs
    .split('\n')
    .filter((line) => /DIRTIER CORRUPT|Kernel panic|DISK CORRUPT/.test(line))
    .map((line) => line.trim());

  return {
    key: contender.key,
    round: options.round,
    outcome,
    wallMs,
    qemuTotalMs: final.status === 'completed' ? final.totalTimeMs : null,
    downtimeMs: final.status === 'completed' ? final.downtimeMs : null,
    transferredBytes:
      final.transferredBytes > 0 ? final.transferredBytes : (lastActive?.transferredBytes ?? 0),
    passes: Math.max(final.dirtySyncCount, lastActive?.dirtySyncCount ?? 0),
    passStartsMs,
    samples,
    actions,
    decisiveAtMs,
    probeBeforeMibs,
    probeDuringMibs: probeDuring === null ? null : await probeDuring,
    qemuDirtyMaxMibs: qemuDirtyMax,
    runsOn: home.name,
    guestStatus: guest?.status ?? 'unknown',
    heartbeat,
    advancing: heartbeat !== null,
    corruption,
    errorDesc: final.errorDesc,
  };
}

/** Both ends forget the guest (QEMU processes stopped), whatever state the migration left. */
export async function destroyEverywhere(hosts: Host[], id: string): Promise<void> {
  for (const host of hosts) await host.client.destroyGuest(id).catch(() => undefined);
}
