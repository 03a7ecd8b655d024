import type { HostFacts } from '../domain/agent-contract.ts';
import { errorMessage, type Logger } from './log.ts';

export interface RegistrationOptions {
  apiUrl: string;
  apiToken: string;
  facts: () => Promise<HostFacts>;
  log: Logger;
  retryMs?: number;
  refreshMs?: number;
  /**
   * Hears the API's answer after each registration: the host as the inventory has it, with `peers`,
   * the cluster's registered hosts (agent/peers.ts).
   */
  onRegistered?: (hostView: unknown) => Promise<void>;
  /** The revision of the peer list the agent holds (sent as `x-peers-revision`; the API then omits the list). */
  peersRevision?: () => string | null;
}

/**
 * Registers the host with the API: every second until a 2xx (the API may start after the agent),
 * then every minute to refresh the facts; refreshNow() registers at once (a peer it does not know yet).
 */
export class Registration {
  private timer: NodeJS.Timeout | null = null;
  private stopped = false;
  private registered = false;
  private failing = false;
  private inFlight: Promise<void> | null = null;

  constructor(private readonly options: RegistrationOptions) {}

  start(): void {
    void this.run();
  }

  /** Registers now (or joins the registration under way); resolves once its answer was heard. */
  refreshNow(): Promise<void> {
    if (this.stopped) return Promise.resolve();
    if (this.inFlight === null && this.timer !== null) clearTimeout(this.timer);
    return this.run();
  }

  private run(): Promise<void> {
    this.inFlight ??= this.attempt().finally(() => {
      this.inFlight = null;
    });
    return this.inFlight;
  }

  stop(): void {
    this.stopped = true;
    if (this.timer !== null) clearTimeout(this.timer);
  }

  private async attempt(): Promise<void> {
    if (this.stopped) return;
    let ok = false;
    try {
      const response = await fetch(`${this.options.apiUrl.replace(/\/$/, '')}/v1/hosts/register`, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          authorization: `Bearer ${this.options.apiToken}`,
          ...peersRevisionHeader(this.options.peersRevision?.() ?? null),
        },
        body: JSON.stringify(await this.options.facts()),
        signal: AbortSignal.timeout(5000),
      });
      ok = response.ok;
      if (!ok) this.noteFailure(`API answered ${response.status}`);
      else await this.options.onRegistered?.(await response.json().catch(() => null));
    } catch (error) {
      this.noteFailure(errorMessage(error));
    }
    if (ok) {
      if (!this.registered || this.failing) this.options.log(`registered with ${this.options.apiUrl}`);
      this.registered = true;
      this.failing = false;
    }
    if (this.stopped) return;
    const delay = ok ? (this.options.refreshMs ?? 60_000) : (this.options.retryMs ?? 1000);
    this.timer = setTimeout(() => void this.run(), delay);
    this.timer.unref();
  }

  private noteFailure(reason: string): void {
    if (!this.failing)
      this.options.log(`registration with ${this.options.apiUrl} failed (${reason}); retrying every second`);
    this.failing = true;
  }
}

/** Same name as api/peer-list.ts's PEERS_REVISION_HEADER (the agent does not import the API). */
const peersRevisionHeader = (revision: string | null): Record<string, string> =>
  revision === null ? {} : { 'x-peers-revision': revision };
