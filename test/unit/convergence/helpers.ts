import type { MigrationStatus } from '../../../domain/agent-contract.ts';
import { decide, type ConvergenceState } from '../../../domain/convergence/engine.ts';
import type { ConvergencePolicy } from '../../../domain/convergence/policies.ts';
import type { ConvergenceAction, ConvergenceContext, Sample } from '../../../domain/convergence/types.ts';
import { migrationStatus } from '../status-fixture.ts';
import { baseContext, MiB } from './qemu-model.ts';

export const sample = (atMs: number, status: Partial<MigrationStatus> = {}): Sample => ({
  atMs,
  status: migrationStatus({ totalBytes: 512 * MiB, mbps: 251.7, ...status }),
});

export function context(overrides: Partial<ConvergenceContext> = {}): ConvergenceContext {
  return { ...baseContext(), currentDowntimeMs: 300, ...overrides };
}

export interface Replay {
  actions: { atMs: number; pass: number; action: ConvergenceAction }[];
  state: ConvergenceState | null;
  states: ConvergenceState[];
}

/**
 * Feeds a recorded sequence to the engine, open loop: the recording does not react to the actions, but the
 * context does (downtime and bandwidth in force follow the actions, as the caller would keep them).
 */
export function replay(
  policy: ConvergencePolicy,
  samples: readonly Sample[],
  ctx: ConvergenceContext = context(),
  options: { json?: boolean } = {},
): Replay {
  let state: ConvergenceState | null = null;
  const current = { ...ctx };
  const actions: Replay['actions'] = [];
  const states: ConvergenceState[] = [];
  for (const s of samples) {
    const decision = decide(policy, state, s, current);
    state = options.json ? (JSON.parse(JSON.stringify(decision.state)) as ConvergenceState) : decision.state;
    states.push(state);
    for (const action of decision.actions) {
      actions.push({ atMs: s.atMs, pass: s.status.dirtySyncCount, action });
      if (action.type === 'set-downtime') current.currentDowntimeMs = action.downtimeMs;
      if (action.type === 'set-bandwidth') current.currentBandwidthBytes = action.bandwidthBytes;
    }
  }
  return { actions, state, states };
}

/** "type@seconds" for compact expectations. */
export const brief = (actions: Replay['actions']) =>
  actions.map(({ atMs, action }) => {
    const value =
      action.type === 'set-downtime'
        ? `:${action.downtimeMs}`
        : action.type === 'set-bandwidth'
          ? `:${action.bandwidthBytes}`
          : action.type === 'raise-throttle'
            ? `:${action.cpuThrottleIncrement}`
            : '';
    return `${action.type}${value}@${atMs / 1000}`;
  });
