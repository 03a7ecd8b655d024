import { describe, expect, it } from 'vitest';
import { startParameters } from '../../../domain/convergence/engine.ts';
import {
  novaCompletionTimeoutSeconds,
  novaDataGb,
  novaDowntimeSteps,
  type NovaPolicy,
} from '../../../domain/convergence/nova.ts';
import { novaDefault } from '../../../domain/convergence/policies.ts';
import { brief, context, replay, sample } from './helpers.ts';
import { baseContext, GiB, MiB, runMigration, workloads } from './qemu-model.ts';
import { convergingTrace, samplesFrom } from './recorded.ts';

const forceComplete: NovaPolicy = { ...novaDefault, timeoutAction: 'force-complete' };

/** A migration that never gets anywhere, sampled every 10 s and every 0.5 s around each 150 s mark and 1600 s. */
function stuck(untilMs: number) {
  const times = new Set<number>();
  for (let at = 10_000; at <= untilMs; at += 10_000) times.add(at);
  for (const mark of [...Array.from({ length: 11 }, (_, i) => i * 150_000), 1_600_000]) {
    for (const at of [mark, mark + 500, mark + 1_000]) if (at > 0 && at <= untilMs) times.add(at);
  }
  return [...times]
    .sort((x, y) => x - y)
    .map((at) => sample(at, { dirtySyncCount: 3, remainingBytes: 40 * MiB }));
}

describe('Nova policy', () => {
  it('counts memory and each migrated disk as at least 2 GiB', () => {
    expect(novaDataGb({ memoryBytes: 512 * MiB, localDiskBytes: 0 })).toBe(2);
    expect(novaDataGb({ memoryBytes: 3 * GiB, localDiskBytes: 0 })).toBe(3);
    expect(novaDataGb({ memoryBytes: 512 * MiB, localDiskBytes: 10 * GiB })).toBe(12);
    expect(
      novaDataGb({ memoryBytes: 4 * GiB, localDiskBytes: 11 * GiB, localDiskSizesBytes: [GiB, 10 * GiB] }),
    ).toBe(16);
  });

  it('computes the downtime steps exactly as nova.virt.libvirt.migration.downtime_steps', () => {
    // Nova's own docstring example: 10 steps, 30 s delay, 3 GB, 400 ms.
    const example = novaDowntimeSteps({ ...novaDefault, downtimeMs: 400, downtimeDelaySecondsPerGiB: 30 }, 3);
    expect(example.map((s) => [s.afterSeconds, s.downtimeMs])).toEqual([
      [0, 40],
      [90, 76],
      [180, 112],
      [270, 148],
      [360, 184],
      [450, 220],
      [540, 256],
      [630, 292],
      [720, 328],
      [810, 364],
      [900, 400],
    ]);
    // Defaults, 2 GiB: delay int(75 x 2) = 150 s, base 50, offset 45.
    expect(novaDowntimeSteps(novaDefault, 2).map((s) => [s.afterSeconds, s.downtimeMs])).toEqual(
      Array.from({ length: 11 }, (_, i) => [150 * i, Math.trunc(50 + 45 * i)]),
    );
    // int() truncates: 2.5 GiB -> delay int(187.5) = 187; step 3 at int(187 x 3) = 561.
    expect(novaDowntimeSteps(novaDefault, 2.5)[3]).toEqual({ afterSeconds: 561, downtimeMs: 185 });
    expect(novaCompletionTimeoutSeconds(novaDefault, 2.5)).toBe(2000);
  });

  it('starts at the first step (50 ms) and keeps auto-converge off when post-copy is on', () => {
    expect(startParameters(novaDefault, baseContext())).toMatchObject({
      downtimeMs: 50,
      autoConverge: false,
    });
    const permitting: NovaPolicy = { ...novaDefault, permitAutoConverge: true };
    expect(startParameters(permitting, baseContext({ autoConvergeAllowed: true }))).toMatchObject({
      autoConverge: true,
      postCopy: false,
    });
    const both = startParameters(
      permitting,
      baseContext({ autoConvergeAllowed: true, postCopyAllowed: true }),
    );
    expect(both).toMatchObject({ autoConverge: false, postCopy: true });
    expect(both.reason).toMatch(/auto-converge off because post-copy is on/);
  });

  it('raises the downtime one step whenever the elapsed seconds exceed the next mark', () => {
    const run = replay(novaDefault, stuck(1_600_000), context({ currentDowntimeMs: 50 }));
    expect(brief(run.actions)).toEqual([
      'set-downtime:95@150.5',
      'set-downtime:140@300.5',
      'set-downtime:185@450.5',
      'set-downtime:230@600.5',
      'set-downtime:275@750.5',
      'set-downtime:320@900.5',
      'set-downtime:365@1050.5',
      'set-downtime:410@1200.5',
      'set-downtime:455@1350.5',
      'set-downtime:500@1500.5',
    ]);
    expect(run.actions[0]?.action.reason).toBe(
      '150.5 s elapsed > 150 s: step 1 of 10 (every 150 s = 75 s/GiB x 2.00 GiB), remaining 40.0 MiB: downtime 50 -> 95 ms',
    );
  });

  it('sets the first step itself when the migration did not start with it', () => {
    const run = replay(
      novaDefault,
      [sample(500, { dirtySyncCount: 1 })],
      context({ currentDowntimeMs: 300 }),
    );
    expect(brief(run.actions)).toEqual(['set-downtime:50@0.5']);
  });

  it('aborts after 800 s per GiB by default (1600 s for 2 GiB), once', () => {
    const run = replay(novaDefault, stuck(1_605_000), context({ currentDowntimeMs: 50 }));
    const aborts = run.actions.filter((a) => a.action.type === 'abort');
    expect(brief(aborts)).toEqual(['abort@1600.5']);
    expect(aborts[0]?.action.reason).toBe(
      '1600.5 s elapsed > completion timeout 1600 s (800 s/GiB x 2.00 GiB), remaining 40.0 MiB: aborting',
    );
    expect(run.actions.at(-1)?.action.type).toBe('abort');
  });

  it('force-complete: post-copy when permitted, else pause, else abort; never twice', () => {
    const late = [
      sample(1_600_000, { dirtySyncCount: 900 }),
      sample(1_600_500, { dirtySyncCount: 901 }),
      sample(1_700_000),
    ];
    const ctx = context({ currentDowntimeMs: 455 });
    expect(brief(replay(forceComplete, late, { ...ctx, postCopyAllowed: true }).actions)).toEqual([
      'set-downtime:500@1600',
      'start-post-copy@1600.5',
    ]);
    const paused = replay(forceComplete, late, { ...ctx, pauseAllowed: true });
    expect(brief(paused.actions)).toEqual(['set-downtime:500@1600', 'pause-guest@1600.5']);
    expect(paused.actions[1]?.action.reason).toMatch(
      /forcing completion by pausing the guest \(post-copy not permitted\)$/,
    );
    const neither = replay(forceComplete, late, ctx);
    expect(brief(neither.actions)).toEqual(['set-downtime:500@1600', 'abort@1600.5']);
    expect(neither.actions[1]?.action.reason).toMatch(
      /cannot force completion \(neither post-copy nor pausing/,
    );
  });

  it('does nothing once post-copy runs, not even the timeout', () => {
    const run = replay(
      novaDefault,
      [sample(1_000_000, { status: 'postcopy-active' }), sample(1_700_000, { status: 'postcopy-active' })],
      context({ currentDowntimeMs: 50 }),
    );
    expect(run.actions).toEqual([]);
  });

  it('leaves the recorded converging guest alone (it finishes in 48 s, before the first step)', () => {
    expect(
      brief(replay(novaDefault, samplesFrom(convergingTrace), context({ currentDowntimeMs: 50 })).actions),
    ).toEqual([]);
  });

  it('in a closed loop the never-converging guest is aborted only after 1600 s', () => {
    const r = runMigration({
      workload: workloads.neverConverges,
      policy: novaDefault,
      context: baseContext(),
      maxMs: 2_000_000,
    });
    expect(r.outcome).toBe('aborted');
    expect(r.endMs).toBe(1_600_500);
  });
});
