import type { MigrationStatus } from '../../../domain/agent-contract.ts';
import { decide, startParameters, type ConvergenceState } from '../../../domain/convergence/engine.ts';
import type { ConvergencePolicy } from '../../../domain/convergence/policies.ts';
import type {
  ConvergenceAction,
  ConvergenceContext,
  Sample,
  StartContext,
  StartParameters,
} from '../../../domain/convergence/types.ts';
import { migrationStatus } from '../status-fixture.ts';

/**
 * A small model of QEMU RAM pre-copy, to produce realistic query-migrate sample sequences and to run the
 * convergence engine in a closed loop. Pass 1 sends all memory; each later pass sends what the guest dirtied
 * during the previous one (never more than its working set); at the sync that ends a pass the migration
 * switches over when what is pending fits in the downtime limit at the bandwidth. Auto-converge raises the
 * vCPU throttle at a sync when the guest dirtied more than half of what the pass sent. Post-copy drains what
 * is left; a paused guest dirties nothing. dirty-pages-rate reads 0 during the first pass, as in QEMU.
 */
export const MiB = 1024 * 1024;
export const GiB = 1024 * MiB;

export interface Workload {
  memoryBytes: number;
  dirtyBytesPerSec: number;
  workingSetBytes: number;
}

interface SimState {
  phase: 'active' | 'postcopy-active' | 'completed';
  elapsedMs: number;
  pass: number;
  passRemaining: number;
  passSent: number;
  dirtied: number;
  transferred: number;
  throttle: number;
  paused: boolean;
  pausedAtMs: number | null;
  switchoverAtMs: number | null;
  downtimeMs: number | null;
}

export interface Knobs {
  bandwidthBytes: number;
  downtimeMs: number;
  autoConverge: boolean;
  throttleInitial: number;
  throttleIncrement: number;
}

function advance(s: SimState, w: Workload, k: Knobs, toMs: number): void {
  const perMs = k.bandwidthBytes / 1000;
  while (s.phase !== 'completed' && s.elapsedMs < toMs) {
    const window = toMs - s.elapsedMs;
    const endsHere = s.passRemaining / perMs <= window;
    const dt = endsHere ? s.passRemaining / perMs : window;
    const sent = endsHere ? s.passRemaining : dt * perMs;
    s.passRemaining -= sent;
    s.passSent += sent;
    s.transferred += sent;
    s.elapsedMs += dt;
    if (s.phase === 'active' && !s.paused) {
      s.dirtied = Math.min(
        w.workingSetBytes,
        s.dirtied + ((w.dirtyBytesPerSec * (1 - s.throttle / 100)) / 1000) * dt,
      );
    }
    if (!endsHere) continue;
    s.passRemaining = 0;
    if (s.phase === 'postcopy-active') {
      s.phase = 'completed';
      continue;
    }
    const stopCopyMs = s.dirtied / perMs;
    if (stopCopyMs <= k.downtimeMs) {
      s.phase = 'completed';
      s.switchoverAtMs = s.pausedAtMs ?? s.elapsedMs;
      s.downtimeMs = Math.max(1, stopCopyMs) + (s.pausedAtMs === null ? 0 : s.elapsedMs - s.pausedAtMs);
      s.transferred += s.dirtied;
      s.elapsedMs += stopCopyMs;
      continue;
    }
    if (k.autoConverge && s.dirtied > 0.5 * s.passSent) {
      s.throttle = s.throttle === 0 ? k.throttleInitial : Math.min(99, s.throttle + k.throttleIncrement);
    }
    s.pass += 1;
    s.passRemaining = s.dirtied;
    s.passSent = 0;
    s.dirtied = 0;
  }
}

function statusOf(s: SimState, w: Workload, k: Knobs): MigrationStatus {
  const done = s.phase === 'completed';
  return migrationStatus({
    status: s.phase,
    transferredBytes: Math.round(s.transferred),
    remainingBytes: done ? 0 : Math.round(s.passRemaining),
    totalBytes: w.memoryBytes,
    dirtyPagesRate:
      s.phase === 'active' && s.pass >= 2 && !s.paused
        ? Math.round((w.dirtyBytesPerSec * (1 - s.throttle / 100)) / 4096)
        : 0,
    pageSize: 4096,
    dirtySyncCount: s.pass,
    mbps: done ? 0 : (k.bandwidthBytes * 8) / 1e6,
    expectedDowntimeMs:
      s.phase === 'active' ? Math.round(((s.passRemaining + s.dirtied) / k.bandwidthBytes) * 1000) : null,
    downtimeMs: done && s.downtimeMs !== null ? Math.round(s.downtimeMs) : null,
    totalTimeMs: Math.round(s.elapsedMs),
    cpuThrottlePercentage: s.throttle > 0 ? s.throttle : null,
  });
}

export interface RunOptions {
  workload: Workload;
  /** The engine policy; null = open loop (nothing is ever applied). */
  policy: ConvergencePolicy | null;
  context: StartContext;
  /** Bytes/s the link carries when no cap is set. */
  linkBytes?: number;
  /** Open-loop knobs (ignored when a policy gives start parameters). */
  knobs?: Partial<Knobs>;
  pollMs?: number;
  maxMs?: number;
  /** Pass the state through JSON between samples, as a Temporal heartbeat would. */
  jsonState?: boolean;
}

export interface TimedAction {
  atMs: number;
  pass: number;
  action: ConvergenceAction;
}

export interface RunResult {
  samples: Sample[];
  actions: TimedAction[];
  states: ConvergenceState[];
  outcome: 'completed' | 'aborted' | 'still running';
  /** Elapsed ms at completion or abort (or maxMs). */
  endMs: number;
  downtimeMs: number | null;
  start: StartParameters | null;
}

/** Runs a migration to completion, abort or maxMs, polling every pollMs and applying the policy's actions. */
export function runMigration(options: RunOptions): RunResult {
  const { workload, policy, context } = options;
  const pollMs = options.pollMs ?? 500;
  const maxMs = options.maxMs ?? 300_000;
  const link = options.linkBytes ?? 30 * MiB;
  const start = policy ? startParameters(policy, context) : null;
  const knobs: Knobs = {
    bandwidthBytes: (start?.bandwidthBytes ?? context.currentBandwidthBytes) || link,
    downtimeMs: start?.downtimeMs ?? 300,
    autoConverge: start?.autoConverge ?? false,
    throttleInitial: start?.cpuThrottleInitial ?? 20,
    throttleIncrement: start?.cpuThrottleIncrement ?? 10,
    ...options.knobs,
  };
  const ctx: ConvergenceContext = { ...context, currentDowntimeMs: knobs.downtimeMs };
  const sim: SimState = {
    phase: 'active',
    elapsedMs: 0,
    pass: 1,
    passRemaining: workload.memoryBytes,
    passSent: 0,
    dirtied: 0,
    transferred: 0,
    throttle: 0,
    paused: false,
    pausedAtMs: null,
    switchoverAtMs: null,
    downtimeMs: null,
  };
  const samples: Sample[] = [];
  const actions: TimedAction[] = [];
  const states: ConvergenceState[] = [];
  let state: ConvergenceState | null = null;

  for (let at = pollMs; at <= maxMs; at += pollMs) {
    advance(sim, workload, knobs, at);
    const sample: Sample = { atMs: at, status: statusOf(sim, workload, knobs) };
    samples.push(sample);
    if (sim.phase === 'completed') {
      return {
        samples,
        actions,
        states,
        outcome: 'completed',
        endMs: sim.elapsedMs,
        downtimeMs: sim.downtimeMs,
        start,
      };
    }
    if (!policy) continue;
    const decision = decide(policy, state, sample, ctx);
    state = options.jsonState
      ? (JSON.parse(JSON.stringify(decision.state)) as ConvergenceState)
      : decision.state;
    states.push(state);
    for (const action of decision.actions) {
      actions.push({ atMs: at, pass: sample.status.dirtySyncCount, action });
      switch (action.type) {
        case 'set-downtime':
          knobs.downtimeMs = action.downtimeMs;
          ctx.currentDowntimeMs = action.downtimeMs;
          break;
        case 'set-bandwidth':
          knobs.bandwidthBytes = action.bandwidthBytes;
          ctx.currentBandwidthBytes = action.bandwidthBytes;
          break;
        case 'raise-throttle':
          knobs.throttleIncrement = action.cpuThrottleIncrement;
          break;
        case 'start-post-copy':
          if (sim.phase === 'active') {
            sim.phase = 'postcopy-active';
            sim.passRemaining += sim.dirtied;
            sim.dirtied = 0;
            sim.switchoverAtMs = at;
            sim.downtimeMs = 2;
          }
          break;
        case 'pause-guest':
          sim.paused = true;
          sim.pausedAtMs = at;
          break;
        case 'abort':
          return { samples, actions, states, outcome: 'aborted', endMs: at, downtimeMs: null, start };
      }
    }
  }
  return { samples, actions, states, outcome: 'still running', endMs: maxMs, downtimeMs: null, start };
}

/** Open-loop samples of a migration nobody steers. */
export function samplesOf(
  workload: Workload,
  knobs: Partial<Knobs> & { bandwidthBytes: number },
  maxMs: number,
  pollMs = 500,
) {
  return runMigration({
    workload,
    policy: null,
    context: baseContext({ memoryBytes: workload.memoryBytes }),
    knobs,
    linkBytes: knobs.bandwidthBytes,
    maxMs,
    pollMs,
  }).samples;
}

export function baseContext(overrides: Partial<StartContext> = {}): StartContext {
  return {
    memoryBytes: 512 * MiB,
    localDiskBytes: 0,
    currentBandwidthBytes: 30 * MiB,
    postCopyAllowed: false,
    pauseAllowed: false,
    autoConvergeAllowed: false,
    ...overrides,
  };
}

/** The guests of the tests. */
export const workloads = {
  /** 512 MiB, dirties 4 MiB/s over 64 MiB: converges in a few short passes at 30 MiB/s. */
  converging: { memoryBytes: 512 * MiB, dirtyBytesPerSec: 4 * MiB, workingSetBytes: 64 * MiB },
  /** As seen in QEMU-NOTES: rewrites 48 MiB in a loop at 40 MiB/s, faster than a 30 MiB/s link: never converges. */
  neverConverges: { memoryBytes: 512 * MiB, dirtyBytesPerSec: 40 * MiB, workingSetBytes: 48 * MiB },
  /** Dirties 22 MiB/s: converges, slowly (D/B = 0.73). */
  slowConverging: { memoryBytes: 512 * MiB, dirtyBytesPerSec: 22 * MiB, workingSetBytes: 256 * MiB },
  /** Rewrites a small 6 MiB working set faster than the link: needs ~200 ms of downtime, not more. */
  smallHotSet: { memoryBytes: 512 * MiB, dirtyBytesPerSec: 60 * MiB, workingSetBytes: 6 * MiB },
} satisfies Record<string, Workload>;
