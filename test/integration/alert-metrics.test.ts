import { randomUUID } from 'node:crypto';
import { Point } from '@influxdata/influxdb-client';
import { describe, expect, inject, it } from 'vitest';
import { usageLines } from '../../agent/metrics.ts';
import { influxqlReader } from '../../activities/alert-metrics.ts';
import { freePort } from '../../scripts/services/ports.ts';

/** The InfluxQL read side of alert rules against the real InfluxDB 1.x the global setup starts. */
const influxUrl = inject('influxUrl');

const S = 1_000_000_000n; // ns per second
/** Not a multiple of any period used here, so GROUP BY time must be shifted to end at END. */
const END_MS = 1_700_000_000_123;
const END = new Date(END_MS);
const END_NS = BigInt(END_MS) * 1_000_000n;
/** Quotes, backslashes, slashes, regex metacharacters, line-protocol separators, non-ASCII. */
const HOSTILE = `a"b\\c'd/e|f.*(g) h,i=j\\/é`;

async function influx(path: string, body: string): Promise<void> {
  const response = await fetch(`${influxUrl}${path}`, { method: 'POST', body });
  if (!response.ok) throw new Error(`${path}: ${response.status} ${await response.text()}`);
}

async function createDatabase(lines: string[]): Promise<string> {
  const database = `alert_${randomUUID().replaceAll('-', '')}`;
  await influx(`/query?q=${encodeURIComponent(`CREATE DATABASE "${database}"`)}`, '');
  await influx(`/write?db=${database}&precision=ns`, lines.join('\n'));
  return database;
}

/** One point at an exact nanosecond. */
function point(
  measurement: string,
  tags: Record<string, string>,
  field: string,
  value: number,
  ns: bigint,
): string {
  const p = new Point(measurement);
  for (const [key, tag] of Object.entries(tags)) p.tag(key, tag);
  return p.floatField(field, value).timestamp(ns.toString()).toLineProtocol() as string;
}
const cpu = (host: string, value: number, ns: bigint) =>
  point('cpu', { host_id: host, host: `name-${host}` }, 'usage_active', value, ns);
const vmCpu = (vm: string, value: number, ns: bigint, host = 'h-1') =>
  point('vm_cpu', { vm_id: vm, host_id: host }, 'usage_active', value, ns);

describe('influxqlReader', () => {
  it('averages cpu per host over (end - period, end], to the nanosecond', async () => {
    const period = 300n * S;
    const database = await createDatabase([
      cpu('h-1', 10, END_NS - period), // the exclusive start: out
      cpu('h-1', 20, END_NS - period + 1n),
      cpu('h-1', 30, END_NS - S),
      cpu('h-1', 40, END_NS), // the inclusive end: in
      cpu('h-1', 99, END_NS + 1n),
      cpu('h-2', 50, END_NS - 2n * period), // only before the window: absent
      cpu('h-3', 60, END_NS), // not asked for: absent
      cpu('h-10', 1000, END_NS), // h-1 must not match it (anchored)
      cpu('hx2', 1000, END_NS), // nor h.2 this one (escaped)
      cpu(HOSTILE, 5, END_NS - S),
    ]);
    const reader = influxqlReader({ url: influxUrl, database });
    expect(
      await reader.hostMeans('cpu.usage_active', ['h-1', 'h-2', 'h.2', HOSTILE, 'nobody'], 300, END),
    ).toEqual(
      new Map([
        ['h-1', 30],
        [HOSTILE, 5],
      ]),
    );
    expect(await reader.hostMeans('cpu.usage_active', ['h-3'], 300, END)).toEqual(new Map([['h-3', 60]]));
    expect(await reader.hostMeans('cpu.usage_active', ['h-2'], 600, END)).toEqual(new Map());
    expect(await reader.hostMeans('cpu.usage_active', ['h-2'], 601, END)).toEqual(new Map([['h-2', 50]]));
  });

  it('averages mem.available, an integer field, as the agents write it', async () => {
    const usage = (bytes: number) => ({ cpuPercent: 1, memAvailableBytes: bytes, guests: [] });
    const database = await createDatabase([
      ...usageLines(usage(12_345_678_901), 'h-1', 'one', new Date(END_MS - 20_000)),
      ...usageLines(usage(12_345_678_904), 'h-1', 'one', new Date(END_MS - 10_000)),
      ...usageLines(usage(1), 'h-1', 'one', new Date(END_MS - 130_000)),
      ...usageLines(usage(2_000), 'h-2', 'two', new Date(END_MS)),
    ]);
    const reader = influxqlReader({ url: influxUrl, database });
    expect(await reader.hostMeans('mem.available', ['h-1', 'h-2'], 120, END)).toEqual(
      new Map([
        ['h-1', 12_345_678_902.5],
        ['h-2', 2_000],
      ]),
    );
  });

  it('gives guest usage and the history of whole periods before it, oldest first', async () => {
    const period = 60n * S;
    const database = await createDatabase([
      // vm-1: window 0 (end - 60 s, end], nothing in window 1, windows 2 and 3, and one point too old.
      vmCpu('vm-1', 1, END_NS),
      vmCpu('vm-1', 3, END_NS - period + 1n),
      vmCpu('vm-1', 10, END_NS - 2n * period),
      vmCpu('vm-1', 20, END_NS - 2n * period - S),
      vmCpu('vm-1', 7, END_NS - 4n * period + 1n),
      vmCpu('vm-1', 100, END_NS - 4n * period),
      // vm-2: only history. vm-3: only older than the history. vm-4: not asked for.
      vmCpu('vm-2', 50, END_NS - period),
      vmCpu('vm-3', 70, END_NS - 5n * period),
      vmCpu('vm-4', 80, END_NS),
      // vm-5 reported by two hosts in the same window (mid-migration): one mean over both.
      vmCpu('vm-5', 10, END_NS, 'h-1'),
      vmCpu('vm-5', 30, END_NS - S, 'h-2'),
      vmCpu(HOSTILE, 42, END_NS - 3n * period),
    ]);
    const reader = influxqlReader({ url: influxUrl, database });
    const asked = ['vm-1', 'vm-2', 'vm-3', 'vm-5', HOSTILE, 'vm-none'];
    expect(await reader.guestUsage(asked, 60, 3, END)).toEqual(
      new Map([
        ['vm-1', { usage: 2, history: [7, 15] }],
        ['vm-2', { usage: null, history: [50] }],
        ['vm-5', { usage: 20, history: [] }],
        [HOSTILE, { usage: null, history: [42] }],
      ]),
    );
    expect(await reader.guestUsage(asked, 60, 0, END)).toEqual(
      new Map([
        ['vm-1', { usage: 2, history: [] }],
        ['vm-5', { usage: 20, history: [] }],
      ]),
    );
    // With a 120 s period the same points fall into other windows: (end-120 s, end], (end-240 s, end-120 s].
    expect((await reader.guestUsage(['vm-1'], 120, 1, END)).get('vm-1')).toEqual({
      usage: 2,
      history: [(10 + 20 + 7) / 3],
    });
  });

  it('reads guests by the hosts that wrote their points, when asked to, keeping the guests asked for', async () => {
    const database = await createDatabase([
      vmCpu('vm-1', 10, END_NS, 'h-1'),
      vmCpu('vm-1', 30, END_NS - S, 'h-2'), // written on h-2: not counted
      vmCpu('vm-2', 50, END_NS - 60n * S, 'h-1'), // window 1
      vmCpu('vm-3', 70, END_NS, 'h-10'), // h-1 must not match h-10
      vmCpu('vm-4', 80, END_NS, 'h-1'), // not asked for
    ]);
    const reader = influxqlReader({ url: influxUrl, database });
    expect(await reader.guestUsage(['vm-1', 'vm-2', 'vm-3'], 60, 1, END, ['h-1'])).toEqual(
      new Map([
        ['vm-1', { usage: 10, history: [] }],
        ['vm-2', { usage: null, history: [50] }],
      ]),
    );
  });

  it("gives a host's metric per period, now and before, for the targets' steadiness", async () => {
    const period = 60n * S;
    const database = await createDatabase([
      cpu('h-1', 40, END_NS),
      cpu('h-1', 20, END_NS - S),
      cpu('h-1', 10, END_NS - period), // window 1: (end - 120 s, end - 60 s]
      cpu('h-1', 70, END_NS - 3n * period + 1n), // window 2
      cpu('h-1', 5, END_NS - 3n * period), // window 3: too old for 2 history periods
      cpu('h-10', 99, END_NS - period), // h-1 must not match it
      cpu('h-2', 50, END_NS - 2n * period), // only history
      cpu(HOSTILE, 8, END_NS - period - S),
    ]);
    const reader = influxqlReader({ url: influxUrl, database });
    expect(await reader.hostUsage('cpu.usage_active', ['h-1', 'h-2', HOSTILE, 'nobody'], 60, 2, END)).toEqual(
      new Map([
        ['h-1', { usage: 30, history: [70, 10] }],
        ['h-2', { usage: null, history: [50] }],
        [HOSTILE, { usage: null, history: [8] }],
      ]),
    );
  });

  it('reads more than 500 hosts from every series, keeping only those asked for', async () => {
    const hosts = Array.from({ length: 1234 }, (_, i) => `host-${i}`);
    const database = await createDatabase([
      ...hosts.map((host, i) => cpu(host, i % 100, END_NS - BigInt(i))),
      cpu('not-asked', 50, END_NS),
    ]);
    const means = await influxqlReader({ url: influxUrl, database }).hostMeans(
      'cpu.usage_active',
      [...hosts, 'missing'],
      60,
      END,
    );
    expect(means.size).toBe(hosts.length);
    expect(means.has('not-asked')).toBe(false);
    expect(means.get('host-0')).toBe(0);
    expect(means.get('host-1233')).toBe(33);
  });

  it('reads a database that does not exist yet as no data', async () => {
    const reader = influxqlReader({ url: influxUrl, database: `missing_${randomUUID().slice(0, 8)}` });
    expect(await reader.hostMeans('cpu.usage_active', ['h-1'], 300, END)).toEqual(new Map());
    expect(await reader.guestUsage(['vm-1'], 300, 3, END)).toEqual(new Map());
  });

  it('throws errors that name the URL, without credentials, and what InfluxDB said', async () => {
    const database = await createDatabase([cpu('h-1', 1, END_NS)]);
    const badPath = influxqlReader({ url: `${influxUrl}/nope`, database });
    await expect(badPath.hostMeans('cpu.usage_active', ['h-1'], 300, END)).rejects.toThrow(
      `InfluxDB query to ${influxUrl}/nope/query failed (HTTP 404): 404 page not found`,
    );

    // Past 2262 a nanosecond time no longer fits InfluxDB's int64: the statement fails (in a 200 answer).
    const reader = influxqlReader({ url: influxUrl, database });
    await expect(
      reader.hostMeans('cpu.usage_active', ['h-1'], 300, new Date('2300-01-01T00:00:00Z')),
    ).rejects.toThrow(`InfluxDB query to ${influxUrl}/query failed: invalid operation: time and`);

    const port = await freePort();
    const unreachable = influxqlReader({ url: `http://reader:s3cret@127.0.0.1:${port}`, database });
    const refused = (await unreachable.guestUsage(['vm-1'], 300, 1, END).catch((e: unknown) => e)) as Error;
    expect(refused.message).toContain(
      `InfluxDB query to http://127.0.0.1:${port}/query failed: fetch failed`,
    );
    expect(refused.message).toContain('ECONNREFUSED');
    expect(refused.message).not.toContain('s3cret');
  });

  it('sends credentials as basic auth, which a server without auth ignores', async () => {
    const database = await createDatabase([cpu('h-1', 8, END_NS)]);
    const userInUrl = influxqlReader({ url: influxUrl.replace('http://', 'http://u:p@'), database });
    expect(await userInUrl.hostMeans('cpu.usage_active', ['h-1'], 60, END)).toEqual(new Map([['h-1', 8]]));
    const explicit = influxqlReader({ url: influxUrl, database, username: 'u', password: 'p' });
    expect(await explicit.hostMeans('cpu.usage_active', ['h-1'], 60, END)).toEqual(new Map([['h-1', 8]]));
  });
});
