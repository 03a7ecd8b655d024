import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { gunzipSync } from 'node:zlib';

/**
 * The Bitbrains "Rnd" trace (see /work/shared/traces/bitbrains-rnd/README.md) on a common 300 s grid: each
 * sample's epoch-second timestamp floored to 300 s, a VM missing a tick keeping its previous value (its first
 * value before its first sample), CPU % clipped to [0, 100].
 */

export const TICK_S = 300;

export interface TraceVm {
  /** The file's VM id (1–209). */
  id: number;
  /** CPU usage [%] of its own provisioned capacity, clipped to [0, 100], per tick. */
  cpuPercent: Float64Array;
  /** CPU usage [MHz], from the clipped percent and the row's provisioned MHz, per tick. */
  cpuMhz: Float64Array;
  /** CPU cores, per tick. */
  cores: Float64Array;
  /** Provisioned memory [MB] (KB / 1024), per tick. */
  memoryMb: Float64Array;
}

export interface Trace {
  /** Epoch seconds of each tick, TICK_S apart. */
  ticks: number[];
  vms: TraceVm[];
  /** Rows read, rows whose CPU % was clipped, ticks filled forward (summed over VMs). */
  rows: number;
  clipped: number;
  filled: number;
}

interface Row {
  tick: number;
  cores: number;
  capacityMhz: number;
  percent: number;
  memoryKb: number;
}

function parseFile(file: string): Row[] {
  const text = gunzipSync(readFileSync(file)).toString('latin1');
  const rows: Row[] = [];
  let start = text.indexOf('\n') + 1; // the header
  while (start < text.length) {
    let end = text.indexOf('\n', start);
    if (end < 0) end = text.length;
    const line = text.slice(start, end).trim();
    start = end + 1;
    if (line === '') continue;
    const f = line.split(';\t');
    const ts = Number(f[0]);
    const row: Row = {
      tick: Math.floor(ts / TICK_S) * TICK_S,
      cores: Number(f[1]),
      capacityMhz: Number(f[2]),
      percent: Number(f[4]),
      memoryKb: Number(f[5]),
    };
    if (![ts, row.cores, row.capacityMhz, row.percent, row.memoryKb].every(Number.isFinite)) {
      throw new Error(`${file}: unparsable row '${line.slice(0, 80)}'`);
    }
    rows.push(row);
  }
  return rows;
}

/** Reads every `<id>.csv.gz` of the directory, in id order, keeping the first `days` days of ticks. */
export function loadTrace(dir: string, days: number): Trace {
  const files = readdirSync(dir)
    .filter((f) => /^\d+\.csv\.gz$/.test(f))
    .sort((a, b) => parseInt(a, 10) - parseInt(b, 10));
  if (files.length === 0) throw new Error(`no <id>.csv.gz files in ${dir}`);
  const parsed = files.map((f) => ({ id: parseInt(f, 10), rows: parseFile(path.join(dir, f)) }));
  let first = Infinity;
  let last = -Infinity;
  for (const { rows } of parsed) {
    if (rows.length === 0) continue;
    first = Math.min(first, rows[0]!.tick);
    last = Math.max(last, rows.at(-1)!.tick);
  }
  const count = Math.min((last - first) / TICK_S + 1, Math.round((days * 86_400) / TICK_S));
  const ticks = Array.from({ length: count }, (_, i) => first + i * TICK_S);
  let rowsRead = 0;
  let clipped = 0;
  let filled = 0;
  const vms: TraceVm[] = parsed.map(({ id, rows }) => {
    const vm: TraceVm = {
      id,
      cpuPercent: new Float64Array(count),
      cpuMhz: new Float64Array(count),
      cores: new Float64Array(count),
      memoryMb: new Float64Array(count),
    };
    const seen = new Uint8Array(count);
    for (const row of rows) {
      const i = (row.tick - first) / TICK_S;
      if (i < 0 || i >= count) continue;
      rowsRead += 1;
      const percent = Math.min(100, Math.max(0, row.percent));
      if (percent !== row.percent) clipped += 1;
      // Two samples floored to the same tick (a 299 s gap): the later one wins.
      vm.cpuPercent[i] = percent;
      vm.cpuMhz[i] = (percent * row.capacityMhz) / 100;
      vm.cores[i] = row.cores;
      vm.memoryMb[i] = row.memoryKb / 1024;
      seen[i] = 1;
    }
    const firstSeen = seen.indexOf(1);
    if (firstSeen < 0) throw new Error(`VM ${id} has no sample in the first ${days} days`);
    for (let i = 0; i < count; i++) {
      if (seen[i]) continue;
      const from = i < firstSeen ? firstSeen : i - 1;
      vm.cpuPercent[i] = vm.cpuPercent[from]!;
      vm.cpuMhz[i] = vm.cpuMhz[from]!;
      vm.cores[i] = vm.cores[from]!;
      vm.memoryMb[i] = vm.memoryMb[from]!;
      filled += 1;
    }
    return vm;
  });
  return { ticks, vms, rows: rowsRead, clipped, filled };
}
