/**
 * InfluxQL path of the alert-metrics reader (activities/alert-metrics.ts): plain HTTP on /query, which
 * every InfluxDB 1.x answers.
 *
 * Bounds: `time > start AND time <= end` with epoch-nanosecond integer literals is exactly (start, end].
 * GROUP BY time buckets are [b, b + P), aligned to epoch multiples of P plus the offset. With the offset
 * (end + 1 ns) mod P, bucket j (0 = current) is [end - (j+1)P + 1ns, end - jP + 1ns), which for
 * integer-nanosecond points is exactly window j, (end - (j+1)P, end - jP]: a point stamped `end` is
 * current. A bucket's `time` is its start, ms-truncated by epoch=ms: end - (j+1)P in ms.
 */
import {
  causeOf,
  durationLiteral,
  checkHistoryPeriods,
  periodMeansOf,
  windowedReads,
  EVERY_SERIES,
  idSelections,
  type IdSelection,
  idRegex,
  periodsBeforeEnd,
  seriesOf,
  windowsOf,
  withoutCredentials,
  type AlertMetricsReader,
  type WindowedRead,
  type WindowMean,
} from './alert-metrics.ts';

const TIMEOUT_MS = 10_000;

interface Series {
  name: string;
  tags?: Record<string, string>;
  columns: string[];
  values: unknown[][] | null;
}
interface QueryResponse {
  results?: { statement_id?: number; series?: Series[]; error?: string; partial?: boolean }[];
  error?: string;
}

/** A double-quoted InfluxQL identifier. */
export const ident = (name: string): string => `"${name.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;

/** `"tag" =~ /^(?:a|b)$/`: see idRegex for the escaping. */
export const tagIn = (tag: string, ids: readonly string[]): string => `${ident(tag)} =~ ${idRegex(ids)}`;

/** ` AND <tag> =~ /…/`, or nothing when every series is read. */
const tagCondition = (tag: string, selection: IdSelection): string =>
  selection === EVERY_SERIES ? '' : ` AND ${tagIn(tag, selection)}`;

export function influxqlReader(settings: {
  url: string;
  database: string;
  username?: string;
  password?: string;
}): AlertMetricsReader {
  const { base, ...fromUrl } = withoutCredentials(settings.url);
  const endpoint = `${base}/query`;
  const username = settings.username ?? fromUrl.username;
  const password = settings.password ?? fromUrl.password ?? '';
  const headers: Record<string, string> = { 'content-type': 'application/x-www-form-urlencoded' };
  if (username !== undefined) {
    headers.authorization = `Basic ${Buffer.from(`${username}:${password}`).toString('base64')}`;
  }

  /** The series of one statement; a database that does not exist yet has none. */
  async function select(query: string): Promise<Series[]> {
    const params = new URLSearchParams({ db: settings.database, epoch: 'ms' });
    let response: Response;
    try {
      response = await fetch(`${endpoint}?${params}`, {
        method: 'POST',
        headers,
        body: new URLSearchParams({ q: query }).toString(),
        signal: AbortSignal.timeout(TIMEOUT_MS),
      });
    } catch (error) {
      throw new Error(`InfluxDB query to ${endpoint} failed: ${causeOf(error)}`, { cause: error });
    }
    const text = await response.text();
    let body: QueryResponse | undefined;
    try {
      body = JSON.parse(text) as QueryResponse;
    } catch {
      body = undefined;
    }
    const error = body?.error ?? body?.results?.find((result) => result.error)?.error;
    if (error !== undefined && /^database not found/.test(error)) return [];
    if (!response.ok || body?.results === undefined) {
      const message = error ?? (text.trim().slice(0, 300) || response.statusText);
      throw new Error(`InfluxDB query to ${endpoint} failed (HTTP ${response.status}): ${message}`);
    }
    if (error !== undefined) throw new Error(`InfluxDB query to ${endpoint} failed: ${error}`);
    if (body.results.some((result) => result.partial)) {
      throw new Error(`InfluxDB query to ${endpoint} failed: answer truncated (the server's max-row-limit)`);
    }
    return body.results.flatMap((result) => result.series ?? []);
  }

  return {
    async hostMeans(metric, hostIds, periodS, end) {
      const windows = windowsOf(periodS, 1, end);
      const { measurement, field } = seriesOf(metric);
      const wanted = new Set(hostIds);
      const means = new Map<string, number>();
      for (const selection of idSelections(hostIds)) {
        const series = await select(
          `SELECT mean(${ident(field)}) FROM ${ident(measurement)} ` +
            `WHERE time > ${windows.startNs} AND time <= ${windows.endNs}${tagCondition('host_id', selection)} ` +
            `GROUP BY ${ident('host_id')}`,
        );
        for (const { tags, values } of series) {
          const id = tags?.host_id;
          const mean = values?.[0]?.[1];
          if (id !== undefined && wanted.has(id) && typeof mean === 'number') means.set(id, mean);
        }
      }
      return means;
    },

    ...windowedReads(windowed),
  };

  async function windowed({
    series: { measurement, field },
    key,
    ids,
    select: where,
    periodS,
    historyPeriods,
    end,
  }: WindowedRead) {
    checkHistoryPeriods(historyPeriods);
    const windows = windowsOf(periodS, historyPeriods + 1, end);
    const offsetNs = (windows.endNs + 1n) % windows.periodNs;
    const means: WindowMean[] = [];
    for (const selection of idSelections(where.ids)) {
      const series = await select(
        `SELECT mean(${ident(field)}) FROM ${ident(measurement)} ` +
          `WHERE time > ${windows.startNs} AND time <= ${windows.endNs}${tagCondition(where.tag, selection)} ` +
          `GROUP BY time(${durationLiteral(windows.periodNs)}, ${offsetNs}ns), ${ident(key)} fill(none)`,
      );
      for (const { tags, values } of series) {
        const id = tags?.[key];
        if (id === undefined) continue;
        for (const [time, mean] of values ?? []) {
          if (typeof time !== 'number' || typeof mean !== 'number') continue;
          // A bucket starting (ms-truncated) k periods before the end is window k - 1.
          means.push({ id, window: periodsBeforeEnd(windows, time) - 1, mean });
        }
      }
    }
    return periodMeansOf(means, ids, historyPeriods);
  }
}
