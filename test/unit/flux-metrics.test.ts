import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { alertMetricsReader, fluxReader, idRegex } from '../../activities/alert-metrics.ts';
import { influxSettings } from '../../domain/config.ts';

/**
 * The Flux path against recorded /api/v2/query answers. The CSV bodies are what InfluxDB 1.8.10
 * (`[http] flux-enabled = true`) returned for these very queries: annotated CSV with CRLF line ends,
 * the annotations the client asks for (datatype, group, default) and a blank line after each result.
 */
const csv = (...lines: string[]): string => lines.map((line) => `${line}\r\n`).join('');

const HOST_MEANS = csv(
  '#datatype,string,long,dateTime:RFC3339,dateTime:RFC3339,string,double',
  '#group,false,false,true,true,true,false',
  '#default,_result,,,,,',
  ',result,table,_start,_stop,host_id,_value',
  ',,0,2023-11-14T22:08:20.000000001Z,2023-11-14T22:13:20.000000001Z,h-1,30',
  ',,1,2023-11-14T22:08:20.000000001Z,2023-11-14T22:13:20.000000001Z,h-2,7.5',
  ',,2,2023-11-14T22:08:20.000000001Z,2023-11-14T22:13:20.000000001Z,not-asked,1',
  '',
);

const GUEST_WINDOWS = csv(
  '#datatype,string,long,dateTime:RFC3339,dateTime:RFC3339,string,double',
  '#group,false,false,true,true,true,false',
  '#default,_result,,,,,',
  ',result,table,_start,_stop,vm_id,_value',
  ',,0,2023-11-14T21:53:20.000000001Z,2023-11-14T21:58:20.000000001Z,vm-2,8',
  ',,1,2023-11-14T22:03:20.000000001Z,2023-11-14T22:08:20.000000001Z,vm-1,4',
  ',,2,2023-11-14T21:58:20.000000001Z,2023-11-14T22:03:20.000000001Z,vm-1,2.5',
  ',,3,2023-11-14T22:08:20.000000001Z,2023-11-14T22:13:20.000000001Z,vm-1,1',
  '',
);

/** An error raised after the response started (2.x): a table with `error` and `reference` columns. */
const IN_STREAM_ERROR = csv(
  '#datatype,string,string',
  '#group,true,true',
  '#default,,',
  ',error,reference',
  ',"panic: runtime error, somewhere",897',
  '',
);

const END = new Date(1_700_000_000_000); // 2023-11-14T22:13:20Z, a multiple of 200 s but not of 300 s

interface Answer {
  status?: number;
  contentType?: string;
  body: string;
}
interface Captured {
  url: string;
  headers: http.IncomingHttpHeaders;
  query: string;
}

let server: http.Server;
let url = '';
const answers: Answer[] = [];
const captured: Captured[] = [];

beforeAll(async () => {
  server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (chunk: Buffer) => (body += chunk.toString()));
    req.on('end', () => {
      const query =
        req.url?.startsWith('/api/v2/query') === true
          ? (JSON.parse(body) as { query: string }).query
          : (new URLSearchParams(body).get('q') ?? '');
      captured.push({ url: req.url ?? '', headers: req.headers, query });
      const answer = answers.shift() ?? { body: '\r\n' };
      res.writeHead(answer.status ?? 200, {
        'content-type': answer.contentType ?? 'text/csv; charset=utf-8',
      });
      res.end(answer.body);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

beforeEach(() => {
  answers.length = 0;
  captured.length = 0;
});

const reader = () => fluxReader({ url, token: 'user:pass', org: 'my-org', bucket: 'telegraf/autogen' });

describe('fluxReader', () => {
  it('averages the metric per host over (end - period, end] and keeps only the hosts asked for', async () => {
    answers.push({ body: HOST_MEANS });
    const means = await reader().hostMeans('cpu.usage_active', ['h-1', 'h-2', 'a"b\\c', 'h-3'], 300, END);
    expect(means).toEqual(
      new Map([
        ['h-1', 30],
        ['h-2', 7.5],
      ]),
    );

    expect(captured).toHaveLength(1);
    const [{ url: path, headers, query }] = captured as [Captured];
    expect(path).toBe('/api/v2/query?org=my-org');
    expect(headers.authorization).toBe('Token user:pass');
    expect(query).toContain('from(bucket: "telegraf/autogen")');
    // Flux's range is [start, stop): one nanosecond later on both ends makes it (end - 300 s, end].
    expect(query).toContain(
      'range(start: time(v: "2023-11-14T22:08:20.000000001Z"), stop: time(v: "2023-11-14T22:13:20.000000001Z"))',
    );
    expect(query).toContain('filter(fn: (r) => r._measurement == "cpu" and r._field == "usage_active")');
    // Exactly these ids, as one regex (storage pushes it down): punctuation escaped, `/` as `\/`.
    expect(query).toContain(String.raw`filter(fn: (r) => r.host_id =~ /^(?:h-1|h-2|a\"b\\c|h-3)$/)`);
    // InfluxDB 1.8 reads range's stop inclusively: the last filter keeps (end - 300 s, end] exact there too.
    expect(query).toContain('filter(fn: (r) => r._time <= time(v: "2023-11-14T22:13:20.000000000Z"))');
    expect(query).toMatch(/\|> group\(columns: \["host_id"\]\)\s*\|> mean\(\)\s*$/);
  });

  it('escapes ids for the regex: punctuation, slashes, newlines, non-ASCII', () => {
    expect(idRegex(['h-1', 'a.b', 'x/y', 'back\\/slash', 'new\nline', 'é ü'])).toBe(
      String.raw`/^(?:h-1|a\.b|x\/y|back\\\/slash|new\x{a}line|\x{e9}\x{20}\x{fc})$/`,
    );
  });

  it('reads mem.available from the mem measurement', async () => {
    answers.push({ body: HOST_MEANS.replace(',h-1,30', ',h-1,2147483648.5') });
    const means = await reader().hostMeans('mem.available', ['h-1'], 120, END);
    expect(means).toEqual(new Map([['h-1', 2147483648.5]]));
    expect(captured[0]!.query).toContain('r._measurement == "mem" and r._field == "available"');
    expect(captured[0]!.query).toContain(
      'range(start: time(v: "2023-11-14T22:11:20.000000001Z"), stop: time(v: "2023-11-14T22:13:20.000000001Z"))',
    );
  });

  it('splits guest windows into current usage and history, oldest first, empty periods left out', async () => {
    answers.push({ body: GUEST_WINDOWS });
    const usage = await reader().guestUsage(['vm-1', 'vm-2', 'vm-3'], 300, 3, END);
    expect(usage).toEqual(
      new Map([
        ['vm-1', { usage: 1, history: [2.5, 4] }],
        ['vm-2', { usage: null, history: [8] }],
      ]),
    );
    const { query } = captured[0]!;
    expect(query).toContain('r._measurement == "vm_cpu" and r._field == "usage_active"');
    // Four windows of 300 s ending at END: (END - 1200 s, END].
    expect(query).toContain(
      'range(start: time(v: "2023-11-14T21:53:20.000000001Z"), stop: time(v: "2023-11-14T22:13:20.000000001Z"))',
    );
    expect(query).toContain('filter(fn: (r) => r.vm_id =~ /^(?:vm-1|vm-2|vm-3)$/)');
    expect(query).toContain('group(columns: ["vm_id"])');
    // END is 200 s past a 300 s epoch multiple: windows shifted by 200 s + 1 ns end exactly at END + 1 ns.
    expect(query).toContain('window(every: 300s, offset: 200000000001ns, createEmpty: false)');
  });

  it("reads a host's windows by host_id from the rule's series, as the guests' by vm_id", async () => {
    // The guests' recorded answer with the host_id column in place of vm_id, as 1.8 answers the same query by host.
    answers.push({ body: GUEST_WINDOWS.replaceAll('vm_id', 'host_id').replaceAll(',vm-', ',h-') });
    const usage = await reader().hostUsage('cpu.usage_active', ['h-1', 'h-2'], 300, 3, END);
    expect(usage).toEqual(
      new Map([
        ['h-1', { usage: 1, history: [2.5, 4] }],
        ['h-2', { usage: null, history: [8] }],
      ]),
    );
    const { query } = captured[0]!;
    expect(query).toContain('r._measurement == "cpu" and r._field == "usage_active"');
    expect(query).toContain('filter(fn: (r) => r.host_id =~ /^(?:h-1|h-2)$/)');
    expect(query).toContain('group(columns: ["host_id"])');
    expect(query).toContain('window(every: 300s, offset: 200000000001ns, createEmpty: false)');
  });

  it("selects guests' series by the hosts that wrote them when given, still keyed by vm_id", async () => {
    answers.push({ body: GUEST_WINDOWS });
    const usage = await reader().guestUsage(['vm-1'], 300, 3, END, ['h-1', 'h-2']);
    expect(usage).toEqual(new Map([['vm-1', { usage: 1, history: [2.5, 4] }]]));
    const { query } = captured[0]!;
    expect(query).toContain('filter(fn: (r) => r.host_id =~ /^(?:h-1|h-2)$/)');
    expect(query).not.toContain('r.vm_id =~');
    expect(query).toContain('group(columns: ["vm_id"])');
  });

  it('ignores windows older than the history asked for', async () => {
    answers.push({ body: GUEST_WINDOWS });
    const usage = await reader().guestUsage(['vm-1', 'vm-2'], 300, 1, END);
    expect(usage).toEqual(new Map([['vm-1', { usage: 1, history: [4] }]]));
  });

  it('reads every series in one query when more ids are asked than a batch holds (no 500-id regexes)', async () => {
    const ids = Array.from({ length: 1201 }, (_, i) => `h-${i}`);
    const means = await reader().hostMeans('cpu.usage_active', ids, 300, END);
    expect(means.size).toBe(0);
    expect(captured).toHaveLength(1);
    expect(captured[0]!.query).not.toMatch(/r\.host_id =~/);
  });

  it('selects up to 500 ids with one regex', async () => {
    const ids = Array.from({ length: 500 }, (_, i) => `h-${i}`);
    await reader().hostMeans('cpu.usage_active', ids, 300, END);
    const idsPerQuery = captured.map(({ query }) => /r\.host_id =~ \/\^\(\?:([^)]*)\)\$\//.exec(query)?.[1]);
    expect(idsPerQuery.map((found) => found?.split('|').length)).toEqual([500]);
  });

  it('asks nothing for no ids', async () => {
    expect(await reader().hostMeans('cpu.usage_active', [], 300, END)).toEqual(new Map());
    expect(await reader().guestUsage([], 300, 3, END)).toEqual(new Map());
    expect(captured).toHaveLength(0);
  });

  it('reads a bucket that does not exist yet as no data (1.8 and 2.x wording)', async () => {
    answers.push({
      status: 500,
      contentType: 'application/json',
      body: '{"error":"failed to initialize execute state: no database"}',
    });
    expect(await reader().hostMeans('cpu.usage_active', ['h-1'], 300, END)).toEqual(new Map());
    answers.push({
      status: 404,
      contentType: 'application/json',
      body: '{"code":"not found","message":"failed to initialize execute state: could not find bucket \\"telegraf/autogen\\""}',
    });
    expect(await reader().guestUsage(['vm-1'], 300, 2, END)).toEqual(new Map());
  });

  it('throws a query error naming the URL (without credentials) and the server message', async () => {
    answers.push({
      status: 400,
      contentType: 'application/json',
      body: '{"code":"invalid","message":"compilation failed: error @2:6-2:7: invalid expression"}',
    });
    const withCredentials = fluxReader({
      url: url.replace('http://', 'http://admin:secret@'),
      token: '',
      org: '',
      bucket: 'telegraf/autogen',
    });
    const error = (await withCredentials
      .hostMeans('cpu.usage_active', ['h-1'], 300, END)
      .catch((e) => e)) as Error;
    expect(error).toBeInstanceOf(Error);
    expect(error.message).toContain(`Flux query to ${url}/api/v2/query failed`);
    expect(error.message).toContain('compilation failed');
    expect(error.message).not.toContain('secret');
    expect(captured[0]!.headers.authorization).toBeUndefined();
  });

  it('throws on an error table in a 200 response', async () => {
    answers.push({ body: IN_STREAM_ERROR });
    await expect(reader().guestUsage(['vm-1'], 300, 2, END)).rejects.toThrow(
      `Flux query to ${url}/api/v2/query failed: panic: runtime error, somewhere`,
    );
  });

  it('throws naming the URL when nothing listens', async () => {
    const idle = http.createServer();
    await new Promise<void>((resolve) => idle.listen(0, '127.0.0.1', resolve));
    const port = (idle.address() as AddressInfo).port;
    await new Promise<void>((resolve) => idle.close(() => resolve()));
    const unreachable = fluxReader({ url: `http://127.0.0.1:${port}`, token: '', org: '', bucket: 'x' });
    await expect(unreachable.hostMeans('cpu.usage_active', ['h-1'], 300, END)).rejects.toThrow(
      `Flux query to http://127.0.0.1:${port}/api/v2/query failed: connect ECONNREFUSED`,
    );
  });
});

describe('alertMetricsReader', () => {
  it('uses Flux when INFLUX_API=flux and InfluxQL by default', async () => {
    answers.push({ body: HOST_MEANS });
    const flux = alertMetricsReader(
      influxSettings({ INFLUX_URL: url, INFLUX_API: 'flux', INFLUX_TOKEN: 't', INFLUX_DB: 'metrics' }),
    );
    expect(await flux.hostMeans('cpu.usage_active', ['h-2'], 300, END)).toEqual(new Map([['h-2', 7.5]]));
    expect(captured[0]!.url).toBe('/api/v2/query?org=');
    expect(captured[0]!.query).toContain('from(bucket: "metrics/autogen")');

    answers.push({
      contentType: 'application/json',
      body: JSON.stringify({
        results: [
          {
            statement_id: 0,
            series: [{ name: 'cpu', tags: { host_id: 'h-2' }, columns: ['time', 'mean'], values: [[0, 12]] }],
          },
        ],
      }),
    });
    const influxql = alertMetricsReader(influxSettings({ INFLUX_URL: url, INFLUX_DB: 'metrics' }));
    expect(await influxql.hostMeans('cpu.usage_active', ['h-2'], 300, END)).toEqual(new Map([['h-2', 12]]));
    expect(captured[1]!.url).toBe('/query?db=metrics&epoch=ms');
    expect(captured[1]!.query).toBe(
      'SELECT mean("usage_active") FROM "cpu" WHERE time > 1699999700000000000 AND time <= 1700000000000000000 ' +
        'AND "host_id" =~ /^(?:h-2)$/ GROUP BY "host_id"',
    );
  });
});
