import { median, ratio, table } from '../lib/stats.ts';
import type { RunResult } from './migrate.ts';
import { MIB, type Contender } from './scenario.ts';

/** The issue's target: ours completes at least 3x sooner than KubeVirt's default, with no larger downtime. */
export const TARGET_RATIO = 3;
/** With post-copy capped too, ours completes within this many times the physical floor (memory / cap). */
export const TARGET_FLOOR_RATIO = 1.5;

const sec = (ms: number | null) =>
  ms === null || !Number.isFinite(ms) ? '-' : `${(ms / 1000).toFixed(1)} s`;
const mib = (bytes: number) => (Number.isFinite(bytes) ? `${(bytes / MIB).toFixed(0)} MiB` : '-');
const downtime = (ms: number | null) => (ms === null || !Number.isFinite(ms) ? '-' : `${ms} ms`);

function guestAfter(r: RunResult): string {
  const alive = r.advancing
    ? `${r.guestStatus} on ${r.runsOn}, HB ${r.heartbeat!.from}->${r.heartbeat!.to}`
    : 'NO HEARTBEAT';
  return r.corruption.length > 0 ? `${alive}, CORRUPT` : alive;
}

function rateText(r: RunResult): string {
  const during = r.probeDuringMibs === null ? '' : `/${r.probeDuringMibs}`;
  return `${r.probeBeforeMibs ?? '?'}${during} (${r.qemuDirtyMaxMibs.toFixed(0)})`;
}

/**
 * start-post-copy taken -> completion seen (how long the guest ran on the destination pulling pages), what
 * was pending at the switch, and what was sent after it.
 */
function postCopyPhase(r: RunResult): string {
  const switched = r.actions.find((a) => a.type === 'start-post-copy' && a.error === null);
  if (!switched || r.outcome !== 'completed') return '-';
  return (
    `~${sec(r.wallMs - switched.atMs)}, ${mib(switched.remainingBytes)} pending, ` +
    `${mib(r.transferredBytes - switched.transferredBytes)} sent`
  );
}

export function runsTable(results: RunResult[]): string {
  return table(
    [
      'run',
      'outcome',
      'time',
      'downtime',
      'sent',
      'passes',
      'decisive at',
      'post-copy phase (pending at switch, sent after)',
      'dirty MiB/s',
      'guest afterwards',
    ],
    results.map((r) => [
      `${r.key} #${r.round}`,
      r.outcome,
      sec(r.wallMs),
      downtime(r.downtimeMs),
      mib(r.transferredBytes),
      String(r.passes),
      sec(r.decisiveAtMs),
      postCopyPhase(r),
      rateText(r),
      guestAfter(r),
    ]),
  );
}

export interface Verdict {
  lines: string[];
  met: boolean | null;
}

export function summaryTable(
  contenders: Contender[],
  results: RunResult[],
  novaLimitSeconds: number,
): string {
  return table(
    ['policy', 'runs', 'outcome', 'time (median)', 'downtime (median)', 'sent (median)', 'decisive action'],
    contenders.map((c) => {
      const runs = results.filter((r) => r.key === c.key);
      const outcomes = [...new Set(runs.map((r) => r.outcome))].join('/');
      const stopped = runs.length > 0 && runs.every((r) => r.outcome === 'stopped-by-bench');
      const time = stopped
        ? `> ${novaLimitSeconds} s (gives up at ${c.policyEndSeconds} s)`
        : sec(median(runs.map((r) => r.wallMs)));
      const downtimes = runs.map((r) => r.downtimeMs).filter((d): d is number => d !== null);
      const decisive = [
        ...new Set(
          runs.map(
            (r) =>
              r.actions.find((a) =>
                ['start-post-copy', 'pause-guest', 'abort', 'bench-cancel'].includes(a.type),
              )?.type ?? 'none',
          ),
        ),
      ].join('/');
      return [
        c.label,
        String(runs.length),
        outcomes,
        time,
        downtimes.length > 0 ? downtime(median(downtimes)) : '-',
        mib(median(runs.map((r) => r.transferredBytes))),
        `${decisive} at ${sec(median(runs.map((r) => r.decisiveAtMs ?? Number.NaN)))}`,
      ];
    }),
  );
}

/** What a policy stopped by the bench would have sent by its own end, at the rate it was sending. */
export function projectionLines(contenders: Contender[], results: RunResult[]): string[] {
  const lines: string[] = [];
  for (const c of contenders) {
    const runs = results.filter((r) => r.key === c.key && r.outcome === 'stopped-by-bench');
    if (runs.length === 0 || !Number.isFinite(c.policyEndSeconds)) continue;
    const rate = median(runs.map((r) => r.transferredBytes / (r.wallMs / 1000)));
    lines.push(
      `${c.label}: stopped by the bench at ${sec(median(runs.map((r) => r.wallMs)))} still copying at ` +
        `${(rate / MIB).toFixed(1)} MiB/s; its own end comes at ${c.policyEndSeconds} s (not observed), ` +
        `~${((rate * c.policyEndSeconds) / MIB / 1024).toFixed(1)} GiB sent by then for nothing`,
    );
  }
  return lines;
}

/**
 * Ratio KubeVirt/ours on the time to complete, ours against the physical floor (`floorMs`: the guest's memory
 * at the bandwidth cap, the least any policy that respects the cap can take), and the downtime comparison;
 * MET only if all hold.
 */
export function verdict(results: RunResult[], floorMs: number): Verdict {
  const ours = results.filter((r) => r.key === 'predictive');
  const kubevirt = results.filter((r) => r.key === 'kubevirt');
  const lines: string[] = [];
  const allCompleted = (runs: RunResult[]) => runs.length > 0 && runs.every((r) => r.outcome === 'completed');
  if (!allCompleted(ours) || !allCompleted(kubevirt)) {
    lines.push(
      `target: MISSED: not every run of ours and of KubeVirt's default completed ` +
        `(ours: ${ours.map((r) => r.outcome).join(', ') || 'none'}; KubeVirt: ${kubevirt.map((r) => r.outcome).join(', ') || 'none'})`,
    );
    return { lines, met: false };
  }
  const oursTime = median(ours.map((r) => r.wallMs));
  const kubevirtTime = median(kubevirt.map((r) => r.wallMs));
  const timeRatio = kubevirtTime / oursTime;
  const oursDowntime = median(ours.map((r) => r.downtimeMs ?? Number.NaN));
  const kubevirtDowntime = median(kubevirt.map((r) => r.downtimeMs ?? Number.NaN));
  const kubevirtRange = kubevirt.map((r) => r.downtimeMs ?? Number.NaN);
  const bytesRatio =
    median(kubevirt.map((r) => r.transferredBytes)) / median(ours.map((r) => r.transferredBytes));
  const fast = timeRatio >= TARGET_RATIO;
  const floorRatio = oursTime / floorMs;
  const nearFloor = floorRatio <= TARGET_FLOOR_RATIO;
  const calm = oursDowntime <= kubevirtDowntime;
  lines.push(
    `time to complete, median: KubeVirt ${sec(kubevirtTime)} / ours ${sec(oursTime)} = ${ratio(timeRatio)}x ` +
      `(target >= ${TARGET_RATIO}x): ${fast ? 'MET' : 'MISSED'}`,
  );
  lines.push(
    `downtime, median: ours ${downtime(oursDowntime)} vs KubeVirt ${downtime(kubevirtDowntime)} ` +
      `(KubeVirt's runs: ${kubevirtRange.map((d) => `${d} ms`).join(', ')}; target: no larger): ${calm ? 'MET' : 'MISSED'}`,
  );
  lines.push(
    `time to complete, median: ours ${sec(oursTime)} / the physical floor ${sec(floorMs)} (memory / cap) = ` +
      `${ratio(floorRatio)}x (target <= ${TARGET_FLOOR_RATIO}x): ${nearFloor ? 'MET' : 'MISSED'}`,
  );
  lines.push(`bytes sent, median: KubeVirt / ours = ${ratio(bytesRatio)}x`);
  const met = fast && nearFloor && calm;
  lines.push(`target: ${met ? 'MET' : 'MISSED'}`);
  return { lines, met };
}
