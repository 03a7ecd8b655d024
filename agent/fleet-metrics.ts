import type { HostUsage } from './driver.ts';
import { errorMessage, type Logger } from './log.ts';
import { MetricsReporter, usageLines } from './metrics.ts';
import type { MetricsOptions } from './settings.ts';

/** One host of a fleet as its metrics name it. */
export interface MetricsHost {
  hostId: string;
  hostName: string;
  usage: () => Promise<HostUsage>;
}

export interface HostSample {
  hostId: string;
  hostName: string;
  usage: HostUsage;
}

/** Every host's lines, each tagged with its own host, all stamped `at`: one write's body. */
export function fleetUsageLines(samples: readonly HostSample[], at: Date): string[] {
  return samples.flatMap((sample) => usageLines(sample.usage, sample.hostId, sample.hostName, at));
}

/**
 * One InfluxDB writer for every host of a fleet: each interval samples every host and writes all their points
 * in one request (a thousand hosts would otherwise make a thousand requests per interval). A host whose
 * sample fails is left out of that write.
 */
export class FleetMetrics {
  private readonly hosts = new Set<MetricsHost>();
  private readonly reporter: MetricsReporter;
  private failingHosts = new Set<string>();

  constructor(
    options: MetricsOptions,
    private readonly log: Logger,
  ) {
    this.reporter = new MetricsReporter({ ...options, log, lines: (at) => this.lines(at) });
  }

  /** Reports this host from the next interval on; the answer stops reporting it. */
  add(host: MetricsHost): () => void {
    this.hosts.add(host);
    return () => this.hosts.delete(host);
  }

  start(): void {
    this.reporter.start();
  }

  stop(): void {
    this.reporter.stop();
  }

  /** One sample of every host and one write (tests). */
  tick(at?: Date): Promise<void> {
    return this.reporter.tick(at);
  }

  private async lines(at: Date): Promise<string[]> {
    const samples: HostSample[] = [];
    for (const host of this.hosts) {
      try {
        samples.push({ hostId: host.hostId, hostName: host.hostName, usage: await host.usage() });
        this.failingHosts.delete(host.hostId);
      } catch (error) {
        if (!this.failingHosts.has(host.hostId))
          this.log(`metrics: cannot sample ${host.hostName}: ${errorMessage(error)}`);
        this.failingHosts.add(host.hostId);
      }
    }
    return fleetUsageLines(samples, at);
  }
}
