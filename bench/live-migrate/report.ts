import os from 'node:os';
import { median, ms, ratio, summarize, table } from '../lib/stats.ts';
import type { ApiRun } from './api-run.ts';
import type { BareRun } from './bare.ts';
import type { QemuStart } from './guest.ts';
import {
  migrationMarks,
  splitWindow,
  type RunHistory,
  type StretchCounts,
  type WindowSplit,
} from './history.ts';

export interface Round {
  index: number;
  warmup: boolean;
  bare: BareRun;
  api: ApiRun;
  /** 1-minute load average when the round started. */
  load: number;
  /** CPU ms this process (API, worker, agents, benchmark) used during each run. */
  bareCpuMs: number;
  apiCpuMs: number;
  /** CPUs busy on average during each run ((b): with its post-migration heartbeat check): ours, and the rest. */
  bareCores: { own: number; other: number };
  apiCores: { own: number; other: number };
  /** The round's headline figures (derived from the above; in the --json output). */
  figures?: RoundFigures;
}

export const TARGET_RATIO = 1.1;
export const TARGET_LATENCY_MS = 300;
/** QEMU completed -> the workflow knows (the monitorMigration activity completed). */
export const TARGET_NOTICE_MS = 50;

const verdict = (ok: boolean) => (ok ? 'met' : 'MISSED');

export function requestToMigrateMs(run: ApiRun): number {
  return run.migrateAt - run.requestAt;
}

export function apiWallMs(run: ApiRun): number {
  return run.completedAt - run.requestAt;
}

/** QEMU completed -> the workflow noticed (monitorMigration's ActivityTaskCompleted). */
export function completionToNoticeMs(run: ApiRun): number {
  return run.noticedAt - run.qemuCompletedAt;
}

export interface RoundFigures {
  bareWallMs: number;
  apiWallMs: number;
  ratio: number;
  requestToMigrateMs: number;
  completionToNoticeMs: number;
  /** Counts that do not depend on the machine (see RunCounts). */
  beforeMigrate: StretchCounts;
  afterCompletion: StretchCounts;
  historyEvents: number;
}

export function roundFigures(round: Round): RoundFigures {
  return {
    bareWallMs: round.bare.wallMs,
    apiWallMs: apiWallMs(round.api),
    ratio: apiWallMs(round.api) / round.bare.wallMs,
    requestToMigrateMs: requestToMigrateMs(round.api),
    completionToNoticeMs: completionToNoticeMs(round.api),
    beforeMigrate: round.api.counts.beforeMigrate,
    afterCompletion: round.api.counts.afterCompletion,
    historyEvents: round.api.history.eventCount,
  };
}

export function roundLine(round: Round): string {
  const a = round.bare;
  const b = round.api;
  const tag = round.warmup ? 'warm-up' : `round ${round.index}`;
  return (
    `${tag.padEnd(9)} (a) ${a.from}->${a.to} ${ms(a.wallMs).padStart(7)}   ` +
    `(b) ${b.from}->${b.to} ${ms(apiWallMs(b)).padStart(7)}   ratio ${ratio(apiWallMs(b) / a.wallMs)}   ` +
    `request->migrate ${ms(requestToMigrateMs(b)).padStart(7)}   ` +
    `completion->noticed ${ms(completionToNoticeMs(b)).padStart(6)}   ` +
    `other CPU ${round.bareCores.other.toFixed(2)}/${round.apiCores.other.toFixed(2)}`
  );
}

/** The copy_started event's data without the URI (a different port every run). */
function copyStartedData(run: ApiRun): Record<string, unknown> {
  const { uri: _uri, ...data } = run.events.find((e) => e.type === 'copy_started')?.data ?? {};
  return data;
}

function startOf(run: ApiRun, phase: string): number | undefined {
  return run.timings[phase]?.startedAt;
}

/** When the step that issues `migrate` began (new runs write phase copying after it). */
function startScheduledAt(run: ApiRun): number {
  return migrationMarks(run.history).start?.startedAt ?? Number.NaN;
}

function eventAt(run: ApiRun, type: string): number {
  const event = run.events.find((e) => e.type === type);
  return event ? Date.parse(event.at) : Number.NaN;
}

/**
 * Marks along (b), in the order they happen; the slices between consecutive marks add up to the wall
 * time. A phase the run did not go through (queued: no slot wait) makes an empty slice.
 */
interface Mark {
  /** Name of the slice that ends at this mark. */
  slice: string;
  /** Which of the issue's phases the slice belongs to. */
  group: string;
  what: string;
  at: (run: ApiRun) => number;
}

const MARKS: Mark[] = [
  {
    slice: 'request -> workflow in phase prechecks',
    group: 'pre-checks',
    what: 'API handler (guest, migration and host reads, row insert), workflow start, first workflow task + phase write',
    at: (r) => startOf(r, 'prechecks') ?? Number.NaN,
  },
  {
    slice: 'checks + reservation -> destination_chosen',
    group: 'pre-checks',
    what: 'placement read (DB + etcd), checks, destination reservation, verdict to the API, event',
    at: (r) => eventAt(r, 'destination_chosen'),
  },
  {
    slice: 'destination_chosen -> phase prechecks ends',
    group: 'pre-checks',
    what: 'what the workflow does before preparing: today the migration slot (acquireMigrationSlot update-with-start)',
    at: (r) => startOf(r, 'queued') ?? startOf(r, 'preparing') ?? Number.NaN,
  },
  {
    slice: 'queued for a slot',
    group: 'pre-checks',
    what: 'timings.queued when the parallel limits made it wait (never here: one migration at a time)',
    at: (r) => startOf(r, 'preparing') ?? Number.NaN,
  },
  {
    slice: 'preparation',
    group: 'preparation',
    what: 'timings.preparing -> startSourceMigration began: guest marked migrating, destination QEMU started + migrate-incoming, the workflow task after it',
    at: (r) => startScheduledAt(r),
  },
  {
    slice: 'copy: startSourceMigration began -> QMP migrate',
    group: 'memory copy',
    what: 'startSourceMigration activity up to the agent sending `migrate`',
    at: (r) => r.migrateAt,
  },
  {
    slice: 'copy: QMP migrate -> QEMU completed',
    group: 'memory copy',
    what: "QEMU's pre-copy passes incl. the final stop-and-copy (completed = startedAt + QEMU's total-time)",
    at: (r) => r.qemuCompletedAt,
  },
  {
    slice: 'switch-over: QEMU completed -> monitor returned',
    group: 'switch-over',
    what: "the monitor's long-poll answer, progress save, activity completion reaching Temporal (= the workflow notices)",
    at: (r) => r.noticedAt,
  },
  {
    slice: 'switch-over: monitor returned -> phase verifying',
    group: 'switch-over',
    what: 'workflow task, phase write (local activity)',
    at: (r) => startOf(r, 'verifying') ?? Number.NaN,
  },
  {
    slice: 'health check',
    group: 'health check',
    what: 'timings.verifying: event, then verifyGuestAlive until the heartbeat proves the guest runs there',
    at: (r) => startOf(r, 'committing') ?? Number.NaN,
  },
  {
    slice: 'commit',
    group: 'commit',
    what: 'timings.committing: the inventory moves the guest, reservation released',
    at: (r) => startOf(r, 'cleaning') ?? Number.NaN,
  },
  {
    slice: 'cleanup',
    group: 'cleanup',
    what: 'timings.cleaning: source QEMU quit, guest dir removed, completed event',
    at: (r) => r.completedAt,
  },
];

function slices(run: ApiRun): number[] {
  let previous = run.requestAt;
  return MARKS.map((mark) => {
    const at = mark.at(run);
    const slice = at - previous;
    previous = at;
    return slice;
  });
}

const TIMELINE: { name: string; of: (r: ApiRun) => number }[] = [
  { name: 'phase prechecks', of: (r) => startOf(r, 'prechecks') ?? Number.NaN },
  { name: 'event destination_chosen', of: (r) => eventAt(r, 'destination_chosen') },
  { name: '202 received by the client', of: (r) => r.responseAt },
  { name: 'phase queued', of: (r) => startOf(r, 'queued') ?? Number.NaN },
  { name: 'phase preparing', of: (r) => startOf(r, 'preparing') ?? Number.NaN },
  { name: 'phase copying', of: (r) => startOf(r, 'copying') ?? Number.NaN },
  { name: 'QMP migrate issued', of: (r) => r.migrateAt },
  { name: 'event copy_started', of: (r) => eventAt(r, 'copy_started') },
  { name: 'QEMU completed', of: (r) => r.qemuCompletedAt },
  { name: 'monitorMigration completed (noticed)', of: (r) => r.noticedAt },
  { name: 'phase verifying', of: (r) => startOf(r, 'verifying') ?? Number.NaN },
  { name: 'event switched_over', of: (r) => eventAt(r, 'switched_over') },
  { name: 'phase committing', of: (r) => startOf(r, 'committing') ?? Number.NaN },
  { name: 'phase cleaning', of: (r) => startOf(r, 'cleaning') ?? Number.NaN },
  { name: 'event completed', of: (r) => eventAt(r, 'completed') },
  { name: 'phase completed (= end of (b))', of: (r) => r.completedAt },
];

const row = (name: string, values: number[]): string[] => {
  const s = summarize(values);
  return [name, ms(s.median), ms(s.min), ms(s.max)];
};

export function printReport(
  rounds: Round[],
  bareStart: QemuStart,
  print: (line?: string) => void,
): { missed: string[] } {
  const measured = rounds.filter((r) => !r.warmup);
  const bare = measured.map((r) => r.bare);
  const api = measured.map((r) => r.api);
  const aWall = summarize(bare.map((r) => r.wallMs));
  const bWall = summarize(api.map(apiWallMs));
  const latency = summarize(api.map(requestToMigrateMs));
  const notice = summarize(api.map(completionToNoticeMs));
  const perRound = summarize(measured.map((r) => apiWallMs(r.api) / r.bare.wallMs));
  const medianRatio = bWall.median / aWall.median;
  const missed: string[] = [];
  if (!(medianRatio <= TARGET_RATIO)) missed.push('ratio');
  if (!(latency.median <= TARGET_LATENCY_MS)) missed.push('request->migrate');
  if (!(notice.median <= TARGET_NOTICE_MS)) missed.push('completion->noticed');

  print(`Results over ${measured.length} rounds (one (a) and one (b) each; warm-up excluded)`);
  print();
  print(
    table(
      ['', 'median', 'min', 'max', 'p25', 'p75'],
      (
        [
          ['(a) bare QEMU wall', aWall, ms],
          ['(b) API + workflow wall', bWall, ms],
          ['(b)/(a) per round', perRound, ratio],
          ['(b) request -> QMP migrate', latency, ms],
          ['(b) QEMU completed -> workflow notices', notice, ms],
          ['(a) dest start -> QMP migrate', summarize(bare.map((r) => r.migrateAtMs)), ms],
        ] as const
      ).map(([name, s, f]) => [name, f(s.median), f(s.min), f(s.max), f(s.p25), f(s.p75)]),
    ),
  );
  print();
  print(
    `(b)/(a), ratio of the median wall times: ${ratio(medianRatio)}  (target <= ${TARGET_RATIO.toFixed(2)})  ` +
      verdict(medianRatio <= TARGET_RATIO),
  );
  print(
    `request -> QMP migrate, median of ${latency.n}: ${ms(latency.median)}  (target <= ${TARGET_LATENCY_MS} ms)  ` +
      verdict(latency.median <= TARGET_LATENCY_MS),
  );
  print(
    `QEMU completed -> workflow notices, median of ${notice.n}: ${ms(notice.median)}  (target <= ${TARGET_NOTICE_MS} ms)  ` +
      verdict(notice.median <= TARGET_NOTICE_MS),
  );
  const sources = [...new Set(api.map((r) => r.migrateAtSource))].join(', ');
  print(`  (time of QMP migrate taken from: ${sources})`);
  const completionSources = [...new Set(api.map((r) => r.qemuCompletedAtSource))].join(', ');
  print(
    `  (QEMU completed taken from: ${completionSources}; noticed = monitorMigration's ActivityTaskCompleted)`,
  );
  print();

  print('(b) Temporal work per run (counts from the history: the same on any machine), medians [min – max]');
  print(countsTable(api));
  print(
    '  before migrate = workflow start -> startSourceMigration began (it issues `migrate`; not counted);',
  );
  print("  after completion = monitorMigration's completion -> workflow closed; local = local activities");
  print("  (MarkerRecorded 'core_local_activity'), not among the activities.");
  print();

  const started = new Set(api.map((r) => JSON.stringify(copyStartedData(r))));
  print(`(a) started QEMU with: ${JSON.stringify(bareStart)}`);
  print(`(b) started QEMU with (copy_started event): ${[...started].join(' | ')}`);
  const known = new Set([
    'destination_chosen',
    'copy_started',
    'switched_over',
    'completed',
    'slot_granted',
    'queued',
  ]);
  const otherEvents = api.flatMap((r) => r.events.map((e) => e.type)).filter((t) => !known.has(t));
  print(
    `(b) events besides destination_chosen, copy_started, switched_over, completed: ${
      otherEvents.length === 0
        ? 'none'
        : [...new Set(otherEvents)]
            .map((t) => `${t} x${otherEvents.filter((o) => o === t).length}`)
            .join(', ')
    }`,
  );
  print();

  print('What QEMU reported at completion (query-migrate on the source), medians');
  print(
    table(
      ['', '(a)', '(b)'],
      [
        [
          'total-time',
          ms(median(bare.map((r) => r.final.totalTimeMs ?? Number.NaN))),
          ms(median(api.map((r) => r.totalTimeMs ?? Number.NaN))),
        ],
        [
          'downtime',
          ms(median(bare.map((r) => r.final.downtimeMs ?? Number.NaN))),
          ms(median(api.map((r) => r.downtimeMs ?? Number.NaN))),
        ],
        [
          'RAM transferred',
          `${(median(bare.map((r) => r.final.transferredBytes)) / 2 ** 20).toFixed(0)} MiB`,
          '(not kept)',
        ],
        ['dirty-sync passes', String(median(bare.map((r) => r.final.dirtySyncCount))), '(not kept)'],
      ],
    ),
  );
  print();

  print('(a) bare script: where the time goes (slices add up to the wall time)');
  print(
    table(
      ['slice', 'median', 'min', 'max'],
      [
        row(
          'destination QEMU spawned -> migrate-incoming ready',
          bare.map((r) => r.destReadyMs),
        ),
        row(
          'source capabilities + parameters -> QMP migrate',
          bare.map((r) => r.migrateAtMs - r.destReadyMs),
        ),
        row(
          'QMP migrate -> completed seen (50 ms poll)',
          bare.map((r) => r.copyMs),
        ),
        row(
          'quit -> source QEMU exited',
          bare.map((r) => r.quitMs),
        ),
        row(
          'total (a)',
          bare.map((r) => r.wallMs),
        ),
      ],
    ),
  );
  print();

  const perRun = api.map(slices);
  print('(b) API + workflow: where the time goes (slices add up to the wall time)');
  print(
    table(
      ['phase', 'slice', 'median', 'min', 'max'],
      [
        ...MARKS.map((mark, i) => [
          mark.group,
          ...row(
            mark.slice,
            perRun.map((s) => s[i] as number),
          ),
        ]),
        ['', ...row('total (b)', api.map(apiWallMs))],
      ],
    ),
  );
  for (const mark of MARKS) print(`  ${mark.slice}: ${mark.what}`);
  print();
  const groups = [...new Set(MARKS.map((m) => m.group))];
  print('(b) by phase of the issue (sum of its slices), medians');
  print(
    table(
      ['phase', 'median', 'min', 'max'],
      groups.map((group) =>
        row(
          group,
          perRun.map((s) => MARKS.reduce((sum, m, i) => sum + (m.group === group ? (s[i] as number) : 0), 0)),
        ),
      ),
    ),
  );
  print();

  print('(b) timeline, ms after the HTTP request (phases from timings, events from the events table)');
  print(
    table(
      ['mark', 'median', 'min', 'max'],
      TIMELINE.filter((mark) => api.some((r) => Number.isFinite(mark.of(r)))).map((mark) =>
        row(
          mark.name,
          api.map((r) => mark.of(r) - r.requestAt),
        ),
      ),
    ),
  );
  print();

  const before = (r: Round) => requestToMigrateMs(r.api) - r.bare.migrateAtMs;
  const copy = (r: Round) => r.api.qemuCompletedAt - r.api.migrateAt - r.bare.copyMs;
  const after = (r: Round) => r.api.completedAt - r.api.qemuCompletedAt - r.bare.quitMs;
  print('Overhead of (b) over (a), per round: in which part of the migration it is');
  print(
    table(
      ['part', 'median', 'min', 'max'],
      [
        row('before QMP migrate: (b) request->migrate - (a) dest start->migrate', measured.map(before)),
        row('copy: (b) migrate->QEMU completed - (a) migrate->completed seen', measured.map(copy)),
        row('after completion: (b) ->row completed - (a) quit->source exited', measured.map(after)),
        row(
          'total: (b) wall - (a) wall',
          measured.map((r) => apiWallMs(r.api) - r.bare.wallMs),
        ),
      ],
    ),
  );
  print();

  const windows: { name: string; split: (r: ApiRun) => WindowSplit }[] = [
    { name: 'request -> QMP migrate', split: (r) => splitWindow(r.history, r.requestAt, r.migrateAt) },
    {
      name: 'QMP migrate -> QEMU completed',
      split: (r) => splitWindow(r.history, r.migrateAt, r.qemuCompletedAt),
    },
    {
      name: 'QEMU completed -> row completed',
      split: (r) => splitWindow(r.history, r.qemuCompletedAt, r.completedAt),
    },
  ];
  print('(b) what Temporal was doing (from the run history; medians per run, ms)');
  print(
    table(
      ['window', 'activities', 'local', 'activity running', 'activity queued', 'workflow task', 'other'],
      windows.map(({ name, split }) => {
        const parts = api.map(split);
        const m = (f: (s: WindowSplit) => number) => ms(median(parts.map(f)));
        return [
          name,
          String(median(parts.map((p) => p.activityCount))),
          String(median(parts.map((p) => p.localActivityCount))),
          m((p) => p.activityRunning),
          m((p) => p.activityQueued),
          m((p) => p.workflowTask),
          m((p) => p.other),
        ];
      }),
    ),
  );
  print(
    '  running = inside an activity (DB, agent, QEMU work); queued = scheduled, not yet picked up by the',
  );
  print('  worker; workflow task = the worker advancing the workflow between awaits; other = API handler,');
  print('  the client, Temporal between events. Local activities run inside workflow tasks: their time is');
  print('  in "workflow task".');
  print();

  print(
    '(b) activities (local: local activities), in order of first use: calls per run and time per call (medians)',
  );
  print(activityTable(api.map((r) => r.history)));
  const taskCounts = api.map((r) => r.history.workflowTasks.length);
  const taskTimes = api.flatMap((r) => r.history.workflowTasks.map((t) => t.completedAt - t.scheduledAt));
  const localCounts = api.map((r) => r.history.localActivities.length);
  print(
    `  activities per run: ${median(api.map((r) => r.history.activities.length))}, local activities: ${median(localCounts)}, ` +
      `history events: ${median(api.map((r) => r.history.eventCount))}`,
  );
  print(
    `  workflow tasks per run: ${median(taskCounts)}, each ${ms(median(taskTimes))} from scheduled to completed (median)`,
  );
  print();

  print(
    `CPU used by this process (API, worker, agents, benchmark) per run, median: during (a) ${ms(
      median(measured.map((r) => r.bareCpuMs)),
    )}, during (b) ${ms(median(measured.map((r) => r.apiCpuMs)))}`,
  );
  const cores = (f: (r: Round) => number) => {
    const s = summarize(measured.map(f));
    return `${s.median.toFixed(2)} [${s.min.toFixed(2)} – ${s.max.toFixed(2)}]`;
  };
  print(
    `CPUs busy on average, median [min – max] over the runs (of ${os.cpus().length}): ` +
      `benchmark's own processes (servers, agents, QEMUs, this process) during (a) ${cores((r) => r.bareCores.own)}, ` +
      `during (b) ${cores((r) => r.apiCores.own)}; anything else on the machine ("other CPU" above) during (a) ` +
      `${cores((r) => r.bareCores.other)}, during (b) ${cores((r) => r.apiCores.other)}`,
  );
  print(`1-minute load average at round start: ${cores((r) => r.load)}`);
  return { missed };
}

/** Workflow tasks, activities, local activities and history events before migrate, after completion, in all. */
export function countsTable(api: readonly ApiRun[]): string {
  const cell = (values: number[]) => {
    const s = summarize(values);
    if (s.n === 0) return '-';
    return s.min === s.max ? String(s.median) : `${s.median} [${s.min} – ${s.max}]`;
  };
  const stretches: [string, (r: ApiRun) => StretchCounts][] = [
    ['before migrate', (r) => r.counts.beforeMigrate],
    ['after completion', (r) => r.counts.afterCompletion],
    ['whole run', (r) => r.counts.whole],
  ];
  return table(
    ['', 'workflow tasks', 'activities', 'local', 'history events'],
    stretches.map(([name, of]) => [
      name,
      cell(api.map((r) => of(r).workflowTasks)),
      cell(api.map((r) => of(r).activities)),
      cell(api.map((r) => of(r).localActivities)),
      cell(api.map((r) => of(r).events)),
    ]),
  );
}

/**
 * Each activity of the runs, local ones too ("(local)"), in order of first use: calls per run and time
 * per call (medians). A local activity's running time is what its marker tells (LocalActivitySpan.runMs);
 * it is never queued on the task queue.
 */
export function activityTable(runs: readonly RunHistory[]): string {
  type Call = { key: string; at: number; runMs: number; queuedMs: number };
  const callsOf = (r: RunHistory): Call[] =>
    [
      ...r.activities.map((a) => ({
        key: a.name,
        at: a.scheduledAt,
        runMs: a.completedAt - a.startedAt,
        queuedMs: a.startedAt - a.scheduledAt,
      })),
      ...r.localActivities.map((l) => ({
        key: `${l.name} (local)`,
        at: l.completedAt - (Number.isFinite(l.runMs) ? l.runMs : 0),
        runMs: l.runMs,
        queuedMs: Number.NaN,
      })),
    ].sort((x, y) => x.at - y.at);
  const perRun = runs.map(callsOf);
  const names = [...new Set(perRun.flatMap((calls) => calls.map((c) => c.key)))];
  return table(
    ['activity', 'calls', 'running', 'queued'],
    names.map((name) => {
      const calls = perRun.flatMap((r) => r.filter((c) => c.key === name));
      return [
        name,
        String(median(perRun.map((r) => r.filter((c) => c.key === name).length))),
        ms(median(calls.map((c) => c.runMs))),
        ms(median(calls.map((c) => c.queuedMs))),
      ];
    }),
  );
}
