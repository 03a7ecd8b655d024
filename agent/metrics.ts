import { Point } from '@influxdata/influxdb-client';
import { influxWriteRequests, type InfluxWrite, type InfluxWriteRequests } from '../domain/config.ts';
import type { HostUsage } from './driver.ts';
import { errorMessage, type Logger } from './log.ts';

interface MetricsTarget {
  url: string;
  database: string;
  intervalSeconds: number;
  /** How points are written (INFLUX_API and its credentials); absent: 1.x /write on `database`, no auth. */
  write?: InfluxWrite;
  log: Logger;
}

/** One host's usage (an agent), or the lines of many at once (a sim fleet: one write for all its hosts). */
export type MetricsOptions = MetricsTarget &
  (
    | { hostId: string; hostName: string; usage: () => Promise<HostUsage> }
    | { lines: (at: Date) => Promise<string[]> }
  );

/** Line protocol in the telegraf schema: cpu.usage_active, mem.available (host), vm_cpu.usage_active (guest). */
export function usageLines(usage: HostUsage, hostId: string, hostName: string, at: Date): string[] {
  const points = [
    new Point('cpu')
      .tag('host_id', hostId)
      .tag('host', hostName)
      .floatField('usage_active', usage.cpuPercent),
    new Point('mem')
      .tag('host_id', hostId)
      .tag('host', hostName)
      .intField('available', Math.max(0, Math.round(usage.memAvailableBytes))),
    ...usage.guests.map((guest) =>
      new Point('vm_cpu')
        .tag('vm_id', guest.id)
        .tag('host_id', hostId)
        .floatField('usage_active', guest.cpuPercent),
    ),
  ];
  return points.map((point) => point.timestamp(at).toLineProtocol()).filter((line): line is string => !!line);
}

/**
 * Writes the host's usage to InfluxDB every interval: 1.x /write with optional basic auth, or /api/v2/write
 * with a token (2.x, 1.8). An unreachable InfluxDB is a warning and a retry at the next tick, never a crash;
 * a 1.x database is created (idempotently) until that worked or the user may not (not an admin).
 */
export class MetricsReporter {
  private timer: NodeJS.Timeout | null = null;
  private databaseReady = false;
  private failing = false;
  private readonly requests: InfluxWriteRequests;

  constructor(private readonly options: MetricsOptions) {
    this.requests = influxWriteRequests(options.write ?? { api: 'influxql', database: options.database });
  }

  start(): void {
    if (this.timer !== null) return;
    void this.tickQuietly();
    this.timer = setInterval(() => void this.tickQuietly(), this.options.intervalSeconds * 1000);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
  }

  /** One sample and one write; throws on failure (the interval loop logs instead). */
  async tick(at = new Date()): Promise<void> {
    const { create, write } = this.requests;
    if (!this.databaseReady && create !== null) {
      // A writer that is not an admin may not create it (403): the operator did, or the write says so.
      const status = await this.post(create, '', [403]);
      this.databaseReady = true;
      if (status === 403)
        this.options.log('metrics: may not create the database (not an admin); writing anyway');
    }
    const options = this.options;
    const lines =
      'lines' in options
        ? await options.lines(at)
        : usageLines(await options.usage(), options.hostId, options.hostName, at);
    if (lines.length === 0) return;
    await this.post(write, lines.join('\n'));
  }

  private async tickQuietly(): Promise<void> {
    try {
      await this.tick();
      if (this.failing) this.options.log(`metrics: writing to ${this.options.url} again`);
      this.failing = false;
    } catch (error) {
      if (!this.failing) {
        this.options.log(
          `metrics: WARNING cannot write to ${this.options.url} (${errorMessage(error)}); retrying every tick`,
        );
      }
      this.failing = true;
    }
  }

  /** The answer's status; throws on any failure but those `tolerated`. */
  private async post(pathAndQuery: string, body: string, tolerated: number[] = []): Promise<number> {
    const response = await fetch(new URL(pathAndQuery, this.options.url), {
      method: 'POST',
      body,
      headers: { 'content-type': 'text/plain; charset=utf-8', ...this.requests.headers },
      signal: AbortSignal.timeout(5000),
    });
    if (!response.ok && !tolerated.includes(response.status))
      throw new Error(`InfluxDB answered ${response.status}: ${(await response.text()).slice(0, 200)}`);
    await response.body?.cancel();
    return response.status;
  }
}
