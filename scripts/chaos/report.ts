/**
 * The chaos run as a table: per fault, how migrations ended, how many broke the invariant and how
 * long they took to reach a terminal phase; then every violation with what reproduces it.
 * `npx tsx scripts/chaos/report.ts <records.json>` prints it again from a run's JSON.
 */
import fs from 'node:fs';
import { pathToFileURL } from 'node:url';
import type { FaultName } from './faults.ts';

export type Outcome = 'completed' | 'rolled-back' | 'rolled-forward' | 'failed' | 'refused' | 'stuck';
export const OUTCOMES: Outcome[] = [
  'completed',
  'rolled-back',
  'rolled-forward',
  'failed',
  'refused',
  'stuck',
];

export interface MigrationRecord {
  index: number;
  seed: number;
  fault: FaultName;
  guestId: string;
  guestName: string;
  source: string;
  destination: string;
  migrationId: string | null;
  phase: string;
  error?: string | null;
  outcome: Outcome;
  /** POST → terminal phase seen in the database. */
  timeToTerminalMs: number | null;
  /** POST → the watcher first saw the guest running on the destination. */
  switchoverMs: number | null;
  finalHost?: string | null;
  dbHost?: string;
  events?: string[];
  violations: string[];
  /** Double runs the sampling cannot prove (overlapping only within request/answer uncertainty). */
  suspects: string[];
  /** sim: the guest died with the host (agent process) the fault killed. */
  lostWithHost?: string | null;
  /** Processes of the stack that exited without being asked to during this migration. */
  crashes: string[];
  notes: string[];
}

function median(values: number[]): number | null {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2
    ? (sorted[mid] as number)
    : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

const seconds = (ms: number | null): string => (ms === null ? '-' : (ms / 1000).toFixed(1));

export function formatReport(records: MigrationRecord[], context: { expectedMs?: number } = {}): string {
  const faults = [...new Set(records.map((r) => r.fault))];
  const header = [
    'fault',
    'n',
    ...OUTCOMES,
    'violations',
    'suspects',
    'crashes',
    'host-lost',
    'median s',
    'max s',
  ];
  const rows: string[][] = [];
  const total = (rs: MigrationRecord[], name: string) => {
    const times = rs.map((r) => r.timeToTerminalMs).filter((t): t is number => t !== null);
    rows.push([
      name,
      String(rs.length),
      ...OUTCOMES.map((o) => String(rs.filter((r) => r.outcome === o).length)),
      String(rs.filter((r) => r.violations.length > 0).length),
      String(rs.filter((r) => r.suspects.length > 0).length),
      String(rs.filter((r) => (r.crashes ?? []).length > 0).length),
      String(rs.filter((r) => r.lostWithHost).length),
      seconds(median(times)),
      seconds(times.length ? Math.max(...times) : null),
    ]);
  };
  for (const fault of faults)
    total(
      records.filter((r) => r.fault === fault),
      fault,
    );
  total(records, 'all');
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] as string).length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === 0 ? c.padEnd(widths[i] as number) : c.padStart(widths[i] as number)))
      .join('  ');
  const out = [
    '',
    `chaos: ${records.length} migrations` +
      (context.expectedMs
        ? `, a migration without fault switches over ${seconds(context.expectedMs)} s after the POST`
        : ''),
    '(violations/suspects count migrations; times are POST → terminal phase in the database)',
    '',
    line(header),
    line(widths.map((w) => '-'.repeat(w))),
    ...rows.slice(0, -1).map(line),
    line(widths.map((w) => '-'.repeat(w))),
    line(rows.at(-1) as string[]),
    '',
  ];
  const crashed = records.filter((r) => r.violations.length === 0 && (r.crashes ?? []).length > 0);
  if (crashed.length > 0) {
    out.push(`processes that exited unasked (no invariant broken):`);
    for (const r of crashed) out.push(`  #${r.index} ${r.fault}: ${(r.crashes ?? []).join('; ')}`);
    out.push('');
  }
  const broken = records.filter((r) => r.violations.length > 0);
  if (broken.length > 0) {
    out.push(`violations (${broken.length} migrations):`);
    for (const r of broken) {
      out.push(
        `  #${r.index} seed ${r.seed} ${r.fault}: ${r.source} → ${r.destination}, migration ${r.migrationId ?? '-'}, ${r.phase}` +
          (r.error ? ` (${r.error.slice(0, 160)})` : ''),
      );
      for (const v of r.violations) out.push(`      ✗ ${v}`);
      for (const c of r.crashes ?? []) out.push(`      ! ${c}`);
      for (const n of r.notes) out.push(`        ${n}`);
      out.push(
        `      replay: npm run chaos -- --seed ${r.seed} --start ${r.index} --count 1 --faults ${r.fault}`,
      );
    }
    out.push('');
  }
  return out.join('\n');
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const file = process.argv[2];
  if (!file) {
    console.error('usage: tsx scripts/chaos/report.ts <records.json>');
    process.exit(2);
  }
  const data = JSON.parse(fs.readFileSync(file, 'utf8')) as {
    records: MigrationRecord[];
    expectedMs?: number;
  };
  console.log(formatReport(data.records, { expectedMs: data.expectedMs }));
}
