import type { EvacuationOutcome } from '../../domain/evacuation.ts';
import type { SlotLimits } from '../../domain/slots.ts';
import { ms, quantile, table } from '../lib/stats.ts';
import { readRunHistory } from '../live-migrate/history.ts';
import { activityTable } from '../live-migrate/report.ts';
import { handOverGaps, lowerBound, peakConcurrency, splitSlotTime, type Move } from './analysis.ts';
import { handOvers, taskLatencies, type Run } from './histories.ts';

export const TARGET_RATIO = 1.15;

export interface Measured {
  limits: SlotLimits;
  hosts: string[];
  evacuated: string[];
  expected: number;
  /** Epoch ms: just before the maintenance requests were sent. */
  startedAt: number;
  /** Epoch ms: when this process had every evacuateHost result. */
  doneAt: number;
  /** Per evacuated host: its evacuation_completed event (database clock) and its maintenance migrations. */
  perHost: { host: string; completedAt: number; moves: number }[];
  outcomes: { host: string; outcomes: EvacuationOutcome[] }[];
  moves: Move[];
  cpu: {
    /** This process (API, worker, every sim agent, the benchmark), user + system. */
    processMs: number;
    /** This process and every child (Temporal dev server, PostgreSQL, etcd). */
    treeMs: number;
    idleProcessMsPerSecond: number;
  };
  liveRuns: Run[];
  evacuationRuns: Run[];
  slotsRuns: Run[];
}

/** The figures docs/benchmarks.md quotes (also in results.json). */
export interface Figures {
  makespanMs: number;
  boundMs: number;
  ratio: number;
  met: boolean;
  completed: number;
  failed: number;
  cpuMsPerMigration: number;
  historyEventsPerMigration: number;
}

const sorted = (values: number[]) => values.filter((v) => Number.isFinite(v)).sort((a, b) => a - b);
const sec = (value: number) => (Number.isFinite(value) ? `${(value / 1000).toFixed(1)} s` : '-');

/** median, p90, max of a sample, in ms or s. */
function spread(values: number[]): string[] {
  const s = sorted(values);
  return [ms(quantile(s, 0.5)), ms(quantile(s, 0.9)), ms(s.at(-1) ?? Number.NaN), String(s.length)];
}

export function report(m: Measured, print: (line?: string) => void): Figures {
  const { moves, limits } = m;
  const relative = (at: number) => sec(at - m.startedAt);

  // --- outcomes and placement -----------------------------------------------------------------------------
  const outcomes = m.outcomes.flatMap((o) => o.outcomes);
  const count = (outcome: string) => outcomes.filter((o) => o.outcome === outcome).length;
  const completed = moves.filter((mv) => mv.phase === 'completed').length;
  const failed = moves.filter((mv) => mv.phase === 'failed' || mv.phase === 'cancelled').length;
  print(
    `outcomes: ${count('moved')} moved, ${count('failed')} failed, ${count('stays')} stayed (of ${m.expected}); ` +
      `migration rows: ${completed} completed, ${failed} failed, ${moves.length - completed - failed} other`,
  );
  const evacuated = new Set(m.evacuated);
  const others = new Set(m.hosts.filter((h) => !evacuated.has(h)));
  const destinations = [
    ...moves.map((mv) => mv.destination),
    ...outcomes.filter((o) => o.outcome === 'moved').map((o) => o.destination),
  ];
  const intoEvacuated = destinations.filter((d) => d !== null && evacuated.has(d));
  const elsewhere = destinations.filter((d) => d !== null && !evacuated.has(d) && !others.has(d));
  const used = new Set(moves.map((mv) => mv.destination).filter((d) => d !== null));
  print(
    intoEvacuated.length === 0 && elsewhere.length === 0
      ? `destinations: none is an evacuated host; all ${used.size} used are among the ${others.size} others`
      : `destinations: WRONG: ${intoEvacuated.length} into an evacuated host (${[...new Set(intoEvacuated)].join(', ')}), ` +
          `${elsewhere.length} unknown`,
  );
  const peak = peakConcurrency(moves);
  print(
    `peak concurrency (slot -> completed): cluster ${peak.cluster} (limit ${limits.perCluster}), per source ` +
      `${peak.source} (${limits.outboundPerNode}), per destination ${peak.destination} (${limits.inboundPerNode})`,
  );
  print();

  // --- makespan against its bound ---------------------------------------------------------------------------
  const endAt = Math.max(...m.perHost.map((h) => h.completedAt));
  const makespanMs = endAt - m.startedAt;
  const bound = lowerBound(moves, limits);
  const ratio = makespanMs / bound.boundMs;
  const met = ratio <= TARGET_RATIO;
  const durations = moves.map((mv) => mv.durationMs);
  print(
    table(
      [
        'evacuated host',
        'moves',
        'sum of own durations',
        'first slot',
        'last completed',
        'evacuation_completed',
      ],
      m.perHost.map(({ host, completedAt, moves: n }) => {
        const own = moves.filter((mv) => mv.source === host);
        return [
          host,
          String(n),
          sec(own.reduce((sum, mv) => sum + mv.durationMs, 0)),
          relative(Math.min(...own.map((mv) => mv.slotAt))),
          relative(Math.max(...own.map((mv) => mv.completedAt))),
          relative(completedAt),
        ];
      }),
    ),
  );
  print('(times from the first maintenance request)');
  print();
  print(
    `own duration per migration (slot -> completed): median ${ms(quantile(sorted(durations), 0.5))}, ` +
      `p90 ${ms(quantile(sorted(durations), 0.9))}, min ${ms(sorted(durations)[0] ?? Number.NaN)}, ` +
      `max ${ms(sorted(durations).at(-1) ?? Number.NaN)}`,
  );
  const phaseNames = ['preparing', 'copying', 'switching-over', 'verifying', 'committing', 'cleaning'];
  print(
    `  phase medians: ${phaseNames
      .map((p) => `${p} ${ms(quantile(sorted(moves.map((mv) => mv.phaseMs[p] ?? Number.NaN)), 0.5))}`)
      .join(', ')}`,
  );
  const queued = moves.filter((mv) => mv.queuedMs !== null).map((mv) => mv.queuedMs as number);
  print(
    `queue waits: ${queued.length} of ${moves.length} queued; median ${ms(quantile(sorted(queued), 0.5))}, ` +
      `p90 ${ms(quantile(sorted(queued), 0.9))}, max ${ms(sorted(queued).at(-1) ?? Number.NaN)}`,
  );
  print();
  print(`makespan (first maintenance request -> last evacuation_completed): ${sec(makespanMs)}`);
  print(
    `lower bound: max(sum ${sec(bound.sumMs)} / ${limits.perCluster} = ${sec(bound.clusterMs)}, busiest source ` +
      `${bound.busiest.host} ${sec(bound.busiest.sumMs)} / ${limits.outboundPerNode} = ${sec(bound.busiest.boundMs)}) ` +
      `= ${sec(bound.boundMs)} (${bound.by} limit)`,
  );
  print(`ratio makespan / bound: ${ratio.toFixed(3)}; target <= ${TARGET_RATIO}: ${met ? 'MET' : 'MISSED'}`);
  print();

  // --- where the makespan goes beyond sum / limit ---------------------------------------------------------
  const split = splitSlotTime(moves, limits.perCluster, m.startedAt, endAt);
  const asMakespan = (slotMs: number) => sec(slotMs / limits.perCluster);
  const excess = makespanMs - bound.sumMs / limits.perCluster;
  print(
    `makespan - sum / ${limits.perCluster} = ${sec(excess)}: idle slot time / ${limits.perCluster}, by stretch ` +
      `(slot time nobody used, as makespan)`,
  );
  print(
    table(
      ['stretch', 'makespan', 'from -> to'],
      [
        [
          'ramp-up',
          asMakespan(split.rampUp),
          `first request -> all ${limits.perCluster} slots busy (${relative(split.rampEndAt)})`,
        ],
        ['hand-overs', asMakespan(split.handOver), `-> last slot granted (${relative(split.lastSlotAt)})`],
        ['tail', asMakespan(split.tail), `-> last migration completed (${relative(split.lastCompletedAt)})`],
        ['finish', asMakespan(split.finish), '-> last evacuation_completed (outcome events, summary)'],
        [
          'overlap',
          `-${asMakespan(split.overlap)}`,
          'a start stamped before the end of the move it followed',
        ],
      ],
    ),
  );
  const gaps = handOverGaps(moves);
  const [gapMedian, gapP90, gapMax, gapN] = spread(gaps);
  print(
    `hand-over gap (k-th completion -> k-th queued migration's slot, database clock): median ${gapMedian}, ` +
      `p90 ${gapP90}, max ${gapMax} (n ${gapN}); sum ${sec(gaps.reduce((a, b) => a + b, 0))}`,
  );
  const chain = handOvers(m.slotsRuns, m.liveRuns, moves);
  const steps: [string, (c: (typeof chain)[number]) => number][] = [
    ['holder: release sent -> its completed stamp', (c) => c.holderCompletedAt - c.releaseSentAt],
    ['release signal: sent -> slots workflow has it', (c) => c.releaseReceivedAt - c.releaseSentAt],
    ['slots workflow task: release -> grant signal sent', (c) => c.grantSentAt - c.releaseReceivedAt],
    ['grant signal: sent -> waiter has it', (c) => c.grantReceivedAt - c.grantSentAt],
    ['waiter: granted -> preparing (event + phase)', (c) => c.waiterSlotAt - c.grantReceivedAt],
    ['gap: holder completed -> waiter preparing', (c) => c.waiterSlotAt - c.holderCompletedAt],
  ];
  print(
    table(
      ['hand-over step (from the histories)', 'median', 'p90', 'max', 'n'],
      steps.map(([label, of]) => [label, ...spread(chain.map(of))]),
    ),
  );
  // The first stretch is unlike the rest: every evacuation is still recording and starting its moves, and each
  // new move runs its pre-checks and joins the queue; from the last request on, only the queue's flow remains.
  const lastRequestAt = Math.max(...moves.map((mv) => mv.requestedAt));
  const windows = [
    [`until the last move was requested (${relative(lastRequestAt)})`, m.startedAt, lastRequestAt],
    ['after', lastRequestAt, Infinity],
  ] as const;
  print(
    table(
      ['worker latency: median, p90 (n)', ...windows.map(([label]) => label)],
      (
        [
          ['liveMigrate workflow task (scheduled -> completed)', m.liveRuns, 'workflowTaskMs'],
          ['liveMigrate activity pick-up (scheduled -> started)', m.liveRuns, 'activityQueueMs'],
          ['migrationSlots workflow task', m.slotsRuns, 'workflowTaskMs'],
        ] as const
      ).map(([label, runs, key]) => [
        label,
        ...windows.map(([, from, to]) => {
          const [median, p90, , n] = spread(taskLatencies(runs, from, to)[key]);
          return `${median}, ${p90} (${n})`;
        }),
      ]),
    ),
  );
  const late = moves.filter((mv) => mv.slotAt >= lastRequestAt && Number.isFinite(mv.durationMs));
  const early = moves.filter((mv) => mv.slotAt < lastRequestAt && Number.isFinite(mv.durationMs));
  const lateGaps = chain.filter((c) => c.waiterSlotAt >= lastRequestAt);
  // Slot time in use between the last request and the last grant, over all moves (early ones may still run).
  const busy = moves
    .filter((mv) => Number.isFinite(mv.durationMs))
    .reduce(
      (sum, mv) =>
        sum + Math.max(0, Math.min(mv.completedAt, split.lastSlotAt) - Math.max(mv.slotAt, lastRequestAt)),
      0,
    );
  const mean = (values: number[]) => values.reduce((a, b) => a + b, 0) / Math.max(1, values.length);
  print(
    `slots got before the last request: ${early.length}, own duration median ` +
      `${ms(quantile(sorted(early.map((mv) => mv.durationMs)), 0.5))}; after: ${late.length}, median ` +
      `${ms(quantile(sorted(late.map((mv) => mv.durationMs)), 0.5))}, hand-over gap median ` +
      `${ms(quantile(sorted(lateGaps.map((c) => c.waiterSlotAt - c.holderCompletedAt)), 0.5))}; ` +
      `slots busy on average from then to the last grant: ` +
      `${(busy / Math.max(1, split.lastSlotAt - lastRequestAt)).toFixed(2)} ` +
      `(of ${limits.perCluster})`,
  );
  const lateMean = mean(late.map((mv) => mv.durationMs));
  const steadyBoundMs = lowerBound(
    moves.map((mv) => ({ ...mv, durationMs: lateMean })),
    limits,
  ).boundMs;
  print(
    `(the bound counts each move's own duration as measured, slow ones included: with every move at the later ` +
      `mean the bound would be ${sec(steadyBoundMs)} and the ratio ${(makespanMs / steadyBoundMs).toFixed(3)})`,
  );
  print('liveMigrate activities, in order of first use: calls per run and time per call (medians)');
  print(activityTable(m.liveRuns.map((r) => readRunHistory(r.events))));
  print();

  // --- cost: history events and CPU ---------------------------------------------------------------------
  const events = (runs: readonly Run[]) => runs.reduce((sum, r) => sum + r.counts.events, 0);
  const n = Math.max(1, completed);
  const perRun = sorted(m.liveRuns.map((r) => r.counts.events));
  const historyEventsPerMigration = (events(m.liveRuns) + events(m.evacuationRuns) + events(m.slotsRuns)) / n;
  print(
    table(
      [
        'Temporal history',
        'runs',
        'events',
        'per migration',
        'per run (median, min-max)',
        'activities/run',
        'wf tasks/run',
      ],
      (
        [
          ['liveMigrate', m.liveRuns],
          ['evacuateHost', m.evacuationRuns],
          ['migrationSlots', m.slotsRuns],
        ] as const
      ).map(([label, runs]) => {
        const each = sorted(runs.map((r) => r.counts.events));
        const perRun = (key: 'activities' | 'workflowTasks') =>
          (runs.reduce((sum, r) => sum + r.counts[key], 0) / Math.max(1, runs.length)).toFixed(1);
        return [
          label,
          String(runs.length),
          String(events(runs)),
          (events(runs) / n).toFixed(1),
          `${quantile(each, 0.5)} (${each[0] ?? '-'}-${each.at(-1) ?? '-'})`,
          perRun('activities'),
          perRun('workflowTasks'),
        ];
      }),
    ),
  );
  print(
    `history events per migration, all three workflows: ${historyEventsPerMigration.toFixed(1)} ` +
      `(liveMigrate alone: median ${quantile(perRun, 0.5)})`,
  );
  const wallMs = m.doneAt - m.startedAt;
  const idleMs = (m.cpu.idleProcessMsPerSecond * wallMs) / 1000;
  const cpuMsPerMigration = m.cpu.processMs / n;
  print(
    `CPU, this process (worker in-process with the API, ${m.hosts.length} sim agents and the benchmark): ` +
      `${ms(m.cpu.processMs)} over ${sec(wallMs)} = ${ms(cpuMsPerMigration)} per migration ` +
      `(${ms((m.cpu.processMs - idleMs) / n)} above its idle rate of ${m.cpu.idleProcessMsPerSecond.toFixed(1)} ms/s); ` +
      `${(m.cpu.processMs / wallMs).toFixed(2)} cores on average`,
  );
  print(
    `CPU, Temporal + PostgreSQL + etcd servers: ${ms(m.cpu.treeMs - m.cpu.processMs)} = ` +
      `${ms((m.cpu.treeMs - m.cpu.processMs) / n)} per migration`,
  );
  print(`wall: maintenance requests -> every evacuateHost result here ${sec(wallMs)}`);
  return {
    makespanMs,
    boundMs: bound.boundMs,
    ratio,
    met,
    completed,
    failed,
    cpuMsPerMigration,
    historyEventsPerMigration,
  };
}
