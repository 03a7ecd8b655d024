import { describe, expect, it } from 'vitest';
import {
  initialPredictorState,
  observe,
  predict,
  predictFinish,
  PREDICTOR_TUNING,
} from '../../../domain/convergence/predictor.ts';
import { sample } from './helpers.ts';
import { MiB, samplesOf, workloads } from './qemu-model.ts';
import { convergingTrace, neverConvergingTrace, samplesFrom } from './recorded.ts';

const converging = samplesFrom(convergingTrace);
const never = samplesFrom(neverConvergingTrace);
const prefix = <T>(items: readonly T[], atMs: number, at: (t: T) => number) =>
  items.filter((x) => at(x) <= atMs);
const upTo = (samples: typeof converging, atMs: number) => prefix(samples, atMs, (s) => s.atMs);

describe('predictFinish', () => {
  it('knows nothing without samples, nor during setup', () => {
    expect(predictFinish([])).toMatchObject({ verdict: 'unknown', converging: false, etaSeconds: null });
    expect(predictFinish([sample(100, { status: 'setup', mbps: 0 })]).verdict).toBe('unknown');
    expect(predictFinish([sample(100, { status: 'failed' })]).why).toBe('migration failed');
  });

  it('first pass: an ETA for the pass itself, the dirty rate unknown until it ends', () => {
    const samples = upTo(converging, 10_000);
    const remaining = samples.at(-1)?.status.remainingBytes ?? 0;
    const p = predictFinish(samples);
    expect(p).toMatchObject({ verdict: 'converging', converging: true, requiredDowntimeMs: null });
    expect(p.etaSeconds).toBe(Math.ceil(remaining / (p.transferRateBytes ?? 1)));
    expect(p.why).toMatch(
      /^first pass: 212.0 MiB left at 3\d\.\d MiB\/s, dirty rate not known until it ends$/,
    );
  });

  it('on the recorded converging guest: converging from pass 2 on, with an ETA close to the real finish', () => {
    const finishAt = 48_500;
    for (const atMs of [18_500, 22_500, 26_500, 30_500, 34_500, 38_500, 42_500, 46_500]) {
      const p = predictFinish(upTo(converging, atMs));
      expect(p.verdict).toBe('converging');
      const actual = (finishAt - atMs) / 1000;
      expect(Math.abs((p.etaSeconds ?? 0) - actual)).toBeLessThanOrEqual(Math.max(3, actual * 0.15));
    }
    const mid = predictFinish(upTo(converging, 30_500));
    expect(mid.why).toMatch(
      /^pass peaks [\d., ]+ MiB are shrinking \(x0\.\d\d a pass\) towards the 9\.\d MiB that fit 300 ms at 3\d\.\d MiB\/s$/,
    );
    expect(mid.requiredDowntimeMs).toBeGreaterThan(300);
    expect(predictFinish(converging)).toMatchObject({ verdict: 'converging', etaSeconds: 0 });
  });

  it('on the recorded never-converging guest: not converging from the first pass boundary, ~1.6 s of downtime needed', () => {
    for (const s of never.filter((x) => x.status.dirtySyncCount >= 2)) {
      const p = predictFinish(upTo(never, s.atMs));
      expect(p.verdict).toBe('not-converging');
      expect(p.converging).toBe(false);
      expect(p.etaSeconds).toBeNull();
      expect(p.requiredDowntimeMs).toBeGreaterThan(1500);
      expect(p.requiredDowntimeMs).toBeLessThan(1700);
    }
    expect(predictFinish(never).why).toMatch(
      /^dirty 40\.\d MiB\/s >= 90% of transfer 3\d\.\d MiB\/s, and 4\d\.\d MiB pending > the \d\.\d MiB that fit 300 ms at 3\d\.\d MiB\/s \(needs ~1\d{3} ms\)$/,
    );
  });

  it('a larger downtime limit that fits the pending bytes turns the verdict', () => {
    expect(predictFinish(never, { downtimeLimitMs: 2000 })).toMatchObject({ verdict: 'converging' });
  });

  it('catches a bounded working set QEMU undercounts: pass peaks that do not shrink', () => {
    // QEMU reports 5 MiB/s (the same pages rewritten within a period count once), yet 48 MiB is pending each pass.
    const undercounted = never.map((s) => ({
      ...s,
      status: { ...s.status, dirtyPagesRate: (5 * MiB) / 4096 },
    }));
    const early = upTo(undercounted, 20_000); // peaks of passes 2 and 3 only
    expect(predictFinish(early).verdict).toBe('converging');
    const p = predictFinish(upTo(undercounted, 21_000));
    expect(p.verdict).toBe('not-converging');
    expect(p.why).toMatch(
      /^pass peaks 4\d\.\d, 4\d\.\d, 4\d\.\d MiB are not shrinking and stay above the \d\.\d MiB that fit 300 ms/,
    );
    expect(p.peaks).toHaveLength(PREDICTOR_TUNING.plateauPeaks);
  });

  it('shrinking peaks are not a plateau, even when QEMU reports no dirty rate', () => {
    const unreported = converging.map((s) => ({ ...s, status: { ...s.status, dirtyPagesRate: 0 } }));
    for (const s of unreported.filter((x) => x.status.status === 'active')) {
      expect(predictFinish(upTo(unreported, s.atMs)).verdict).toBe('converging');
    }
  });

  it('passes shorter than the polling interval: pass starts are estimated from the bytes sent', () => {
    // 6 MiB rewritten at 60 MiB/s over 30 MiB/s: a pass every 0.2 s, samples every 0.5 s read mid-pass.
    const samples = samplesOf(workloads.smallHotSet, { bandwidthBytes: 30 * MiB, downtimeMs: 100 }, 25_000);
    const p = predictFinish(samples, { downtimeLimitMs: 100 });
    expect(p.verdict).toBe('not-converging');
    for (const peak of p.peaks) expect(Math.abs(peak - 6 * MiB)).toBeLessThan(0.05 * MiB);
    expect(p.requiredDowntimeMs).toBe(200);
    // The raw readings alone would have put most passes under what fits.
    const readings = samples.filter((s) => s.status.dirtySyncCount > 2).map((s) => s.status.remainingBytes);
    expect(readings.filter((r) => r < 3 * MiB).length).toBeGreaterThan(readings.length / 4);
  });

  it('post-copy drains at the transfer rate', () => {
    const post = [
      sample(1000, { dirtySyncCount: 5, remainingBytes: 90 * MiB, transferredBytes: 600 * MiB }),
      sample(2000, {
        status: 'postcopy-active',
        dirtySyncCount: 5,
        remainingBytes: 60 * MiB,
        transferredBytes: 630 * MiB,
      }),
    ];
    expect(predictFinish(post)).toMatchObject({ verdict: 'converging', etaSeconds: 2 });
  });

  it('the predictor state is plain data: observing through JSON round trips gives the same predictions', () => {
    let plain = initialPredictorState();
    let json = initialPredictorState();
    for (const s of never) {
      plain = observe(plain, s);
      json = JSON.parse(JSON.stringify(observe(json, s)));
      expect(predict(json, 300)).toEqual(predict(plain, 300));
    }
    expect(json).toEqual(plain);
  });
});
