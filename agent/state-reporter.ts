import type { GuestState } from '../domain/agent-contract.ts';
import {
  DEFAULT_REPORT_INTERVAL_S,
  DEFAULT_REPORT_POLL_MS,
  reportDue,
  reportEntry,
  reportFingerprint,
  type HostReport,
} from '../domain/guest-reports.ts';
import { errorMessage, type Logger } from './log.ts';

export interface StateReporterOptions {
  apiUrl: string;
  hostId: string;
  /** The credential to present (read at each report: enrolment may set it after the start). */
  credential: () => string;
  guests: () => Promise<GuestState[]>;
  log: Logger;
  intervalS?: number;
  pollMs?: number;
}

/**
 * Tells the API what this host holds, so no read ever has to ask the agent: looks at the guests every poll and
 * reports at once when anything but a heartbeat changed, else every interval (the host's heartbeat). One report
 * in flight at a time; a failed one is sent again at the next look.
 */
export class StateReporter {
  private timer: NodeJS.Timeout | null = null;
  private stopped = false;
  private lastSentFingerprint: string | null = null;
  private lastSentAtMs: number | null = null;
  private failing: string | null = null;
  private inFlight: Promise<void> | null = null;
  private readonly intervalS: number;

  constructor(private readonly options: StateReporterOptions) {
    this.intervalS = options.intervalS ?? DEFAULT_REPORT_INTERVAL_S;
  }

  start(): void {
    this.schedule(0);
  }

  stop(): void {
    this.stopped = true;
    if (this.timer !== null) clearTimeout(this.timer);
  }

  /** Looks now (after a request that changed something), or joins the look under way. */
  nudge(): Promise<void> {
    if (this.stopped) return Promise.resolve();
    if (this.inFlight === null && this.timer !== null) clearTimeout(this.timer);
    return this.look();
  }

  private schedule(delayMs: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => void this.look(), delayMs);
    this.timer.unref();
  }

  private look(): Promise<void> {
    this.inFlight ??= this.reportIfDue().finally(() => {
      this.inFlight = null;
      this.schedule(this.options.pollMs ?? DEFAULT_REPORT_POLL_MS);
    });
    return this.inFlight;
  }

  private async reportIfDue(): Promise<void> {
    if (this.stopped) return;
    let guests;
    try {
      guests = (await this.options.guests()).map(reportEntry);
    } catch (error) {
      this.noteFailure(`cannot list the guests: ${errorMessage(error)}`);
      return;
    }
    const fingerprint = reportFingerprint(guests);
    const nowMs = Date.now();
    const due = reportDue({
      fingerprint,
      lastSentFingerprint: this.lastSentFingerprint,
      lastSentAtMs: this.lastSentAtMs,
      nowMs,
      intervalMs: this.intervalS * 1000,
    });
    if (due === null) return;
    const report: HostReport = { intervalS: this.intervalS, at: new Date(nowMs).toISOString(), guests };
    try {
      const url = `${this.options.apiUrl.replace(/\/$/, '')}/v1/hosts/${this.options.hostId}/report`;
      const response = await fetch(url, {
        method: 'PUT',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${this.options.credential()}` },
        body: JSON.stringify(report),
        signal: AbortSignal.timeout(5000),
      });
      if (!response.ok) {
        // 404 until the registration has made the host known: not worth a line each second.
        const reason = `API answered ${response.status}`;
        if (response.status !== 404) this.noteFailure(`${reason}: ${await response.text().catch(() => '')}`);
        return;
      }
      this.lastSentFingerprint = fingerprint;
      this.lastSentAtMs = nowMs;
      if (this.failing !== null) this.options.log('state reports reach the API again');
      this.failing = null;
    } catch (error) {
      this.noteFailure(errorMessage(error));
    }
  }

  private noteFailure(reason: string): void {
    if (this.failing === reason) return;
    this.failing = reason;
    this.options.log(`state report failed (sent again at the next look): ${reason}`);
  }
}
