import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Point } from '@influxdata/influxdb-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fluxReader, influxqlReader, type AlertMetricsReader } from '../../activities/alert-metrics.ts';
import { usageLines } from '../../agent/metrics.ts';
import { startInflux, type InfluxServer } from '../../scripts/services/influx.ts';

/**
 * The Flux path against a real InfluxDB 1.8 (the first 1.x serving /api/v2/query, with
 * `[http] flux-enabled = true`), and the InfluxQL path against the same server for parity. The binary
 * is not a Debian package: scripts/setup.sh builds it from Go modules into $VMMIG_CACHE/influxd-1.8.
 */
const cache = process.env.VMMIG_CACHE || path.join(os.homedir(), '.cache', 'vmmig');
const binary = process.env.INFLUXD_18_BIN || path.join(cache, 'influxd-1.8', 'influxd');
// scripts/setup.sh builds it (scripts/lib/influxd-flux.sh); a run without it fails rather than skips.
const present = fs.existsSync(binary);

describe('the InfluxDB 1.8 server for the Flux tests', () => {
  it('is installed by scripts/setup.sh', () => {
    expect(present, `no InfluxDB 1.8 binary at ${binary}: run scripts/setup.sh`).toBe(true);
  });
});

const S = 1_000_000_000n;
const END_MS = 1_700_000_000_123;
const END = new Date(END_MS);
const END_NS = BigInt(END_MS) * 1_000_000n;
/** Quotes, backslashes, slashes, regex metacharacters, line-protocol separators, non-ASCII. */
const HOSTILE = `a"b\\c'd/e|f.*(g) h,i=j\\/é`;

let url = '';
let dir = '';
let influxd: InfluxServer | undefined;

beforeAll(async () => {
  if (!present) return;
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'influxd18-'));
  influxd = await startInflux({
    dir,
    logFile: path.join(dir, 'influxd.log'),
    command: binary,
    flux: true,
    startTimeoutMs: 90_000,
  });
  url = influxd.url;
});

afterAll(async () => {
  await influxd?.stop();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

async function createDatabase(lines: string[]): Promise<string> {
  const database = `alert_${randomUUID().replaceAll('-', '')}`;
  const answers: string[] = [];
  for (const [pathAndQuery, body] of [
    [`/query?q=${encodeURIComponent(`CREATE DATABASE "${database}"`)}`, ''],
    [`/write?db=${database}&precision=ns`, lines.join('\n')],
  ] as const) {
    const response = await fetch(`${url}${pathAndQuery}`, { method: 'POST', body });
    answers.push(`${pathAndQuery.split('?')[0]}: ${response.status} ${await response.text()}`);
    if (!response.ok || answers.at(-1)!.includes('"error"')) throw new Error(answers.join('; '));
  }
  return database;
}

function point(measurement: string, tags: Record<string, string>, value: number, ns: bigint): string {
  const p = new Point(measurement);
  for (const [key, tag] of Object.entries(tags)) p.tag(key, tag);
  return p.floatField('usage_active', value).timestamp(ns.toString()).toLineProtocol() as string;
}
const cpu = (host: string, value: number, ns: bigint) =>
  point('cpu', { host_id: host, host: 'x' }, value, ns);
const vmCpu = (vm: string, value: number, ns: bigint, host = 'h-1') =>
  point('vm_cpu', { vm_id: vm, host_id: host }, value, ns);

const readers: [string, (database: string) => AlertMetricsReader][] = [
  ['flux', (database) => fluxReader({ url, token: '', org: '', bucket: `${database}/autogen` })],
  [
    'flux with a 1.8 user:password token',
    (database) => fluxReader({ url, token: 'u:p', org: '-', bucket: `${database}/autogen` }),
  ],
  ['influxql', (database) => influxqlReader({ url, database })],
];

describe.each(readers)('%s on InfluxDB 1.8', (_name, readerFor) => {
  it('averages per host over (end - period, end], to the nanosecond', async () => {
    const period = 300n * S;
    const usage = (bytes: number) => ({ cpuPercent: 1, memAvailableBytes: bytes, guests: [] });
    const reader = readerFor(
      await createDatabase([
        cpu('h-1', 10, END_NS - period),
        cpu('h-1', 20, END_NS - period + 1n),
        cpu('h-1', 30, END_NS - S),
        cpu('h-1', 40, END_NS),
        cpu('h-1', 99, END_NS + 1n),
        cpu('h-2', 50, END_NS - 2n * period),
        cpu('h-3', 60, END_NS),
        cpu('h-10', 1000, END_NS), // h-1 must not match it (anchored)
        cpu('hx2', 1000, END_NS), // nor h.2 this one (escaped)
        cpu(HOSTILE, 5, END_NS - S),
        ...usageLines(usage(12_345_678_901), 'h-4', 'four', new Date(END_MS - 20_000)),
        ...usageLines(usage(12_345_678_904), 'h-4', 'four', new Date(END_MS - 10_000)),
      ]),
    );
    expect(
      await reader.hostMeans('cpu.usage_active', ['h-1', 'h-2', 'h.2', HOSTILE, 'nobody'], 300, END),
    ).toEqual(
      new Map([
        ['h-1', 30],
        [HOSTILE, 5],
      ]),
    );
    expect(await reader.hostMeans('cpu.usage_active', ['h-2'], 601, END)).toEqual(new Map([['h-2', 50]]));
    expect(await reader.hostMeans('mem.available', ['h-1', 'h-4'], 120, END)).toEqual(
      new Map([['h-4', 12_345_678_902.5]]),
    );
  });

  it('gives guest usage and history aligned to the periods, oldest first', async () => {
    const period = 60n * S;
    const reader = readerFor(
      await createDatabase([
        vmCpu('vm-1', 1, END_NS),
        vmCpu('vm-1', 3, END_NS - period + 1n),
        vmCpu('vm-1', 10, END_NS - 2n * period),
        vmCpu('vm-1', 20, END_NS - 2n * period - S),
        vmCpu('vm-1', 7, END_NS - 4n * period + 1n),
        vmCpu('vm-1', 100, END_NS - 4n * period),
        vmCpu('vm-2', 50, END_NS - period),
        vmCpu('vm-3', 70, END_NS - 5n * period),
        vmCpu('vm-4', 80, END_NS),
        vmCpu('vm-5', 10, END_NS, 'h-1'),
        vmCpu('vm-5', 30, END_NS - S, 'h-2'),
        vmCpu(HOSTILE, 42, END_NS - 3n * period),
      ]),
    );
    expect(await reader.guestUsage(['vm-1', 'vm-2', 'vm-3', 'vm-5', HOSTILE, 'vm-none'], 60, 3, END)).toEqual(
      new Map([
        ['vm-1', { usage: 2, history: [7, 15] }],
        ['vm-2', { usage: null, history: [50] }],
        ['vm-5', { usage: 20, history: [] }],
        [HOSTILE, { usage: null, history: [42] }],
      ]),
    );
    expect((await reader.guestUsage(['vm-1'], 120, 1, END)).get('vm-1')).toEqual({
      usage: 2,
      history: [(10 + 20 + 7) / 3],
    });
  });

  it('reads guests by the hosts that wrote their points, when asked to, keeping the guests asked for', async () => {
    const reader = readerFor(
      await createDatabase([
        vmCpu('vm-1', 10, END_NS, 'h-1'),
        vmCpu('vm-1', 30, END_NS - S, 'h-2'), // written on h-2: not counted
        vmCpu('vm-2', 50, END_NS - 60n * S, 'h-1'), // window 1
        vmCpu('vm-3', 70, END_NS, 'h-10'), // h-1 must not match h-10
        vmCpu('vm-4', 80, END_NS, 'h-1'), // not asked for
      ]),
    );
    expect(await reader.guestUsage(['vm-1', 'vm-2', 'vm-3'], 60, 1, END, ['h-1'])).toEqual(
      new Map([
        ['vm-1', { usage: 10, history: [] }],
        ['vm-2', { usage: null, history: [50] }],
      ]),
    );
  });

  it("gives a host's metric per period, now and before, for the targets' steadiness", async () => {
    const period = 60n * S;
    const reader = readerFor(
      await createDatabase([
        cpu('h-1', 40, END_NS),
        cpu('h-1', 20, END_NS - S),
        cpu('h-1', 10, END_NS - period), // window 1: (end - 120 s, end - 60 s]
        cpu('h-1', 70, END_NS - 3n * period + 1n), // window 2
        cpu('h-1', 5, END_NS - 3n * period), // window 3: too old for 2 history periods
        cpu('h-10', 99, END_NS - period), // h-1 must not match it
        cpu('h-2', 50, END_NS - 2n * period), // only history
        cpu(HOSTILE, 8, END_NS - period - S),
      ]),
    );
    expect(await reader.hostUsage('cpu.usage_active', ['h-1', 'h-2', HOSTILE, 'nobody'], 60, 2, END)).toEqual(
      new Map([
        ['h-1', { usage: 30, history: [70, 10] }],
        ['h-2', { usage: null, history: [50] }],
        [HOSTILE, { usage: null, history: [8] }],
      ]),
    );
  });

  it('batches more than 500 hosts', async () => {
    const hosts = Array.from({ length: 1234 }, (_, i) => `host-${i}`);
    const reader = readerFor(
      await createDatabase(hosts.map((host, i) => cpu(host, i % 100, END_NS - BigInt(i)))),
    );
    const means = await reader.hostMeans('cpu.usage_active', hosts, 60, END);
    expect(means.size).toBe(hosts.length);
    expect(means.get('host-1233')).toBe(33);
  });

  it('reads a database that does not exist yet as no data', async () => {
    const reader = readerFor(`missing_${randomUUID().slice(0, 8)}`);
    expect(await reader.hostMeans('cpu.usage_active', ['h-1'], 300, END)).toEqual(new Map());
    expect(await reader.guestUsage(['vm-1'], 300, 2, END)).toEqual(new Map());
  });
});

describe('fluxReader errors on InfluxDB 1.8', () => {
  it('names the URL and what InfluxDB said', async () => {
    const reader = fluxReader({ url: `${url}/nope`, token: '', org: '', bucket: 'telegraf/autogen' });
    await expect(reader.hostMeans('cpu.usage_active', ['h-1'], 300, END)).rejects.toThrow(
      `Flux query to ${url}/nope/api/v2/query failed: 404 Not Found`,
    );
    // No bucket at all is a query error, not "no data".
    const byId = fluxReader({ url, token: '', org: '', bucket: '' });
    await expect(byId.hostMeans('cpu.usage_active', ['h-1'], 300, END)).rejects.toThrow(
      `Flux query to ${url}/api/v2/query failed`,
    );
  });
});
