import type { AgentCredentials } from './agent-credentials.ts';
import type {
  AgentError,
  CleanupRequest,
  DiskCopyStatus,
  DiskExportRequest,
  DiskExportResult,
  DiskImportRequest,
  GuestPingResult,
  GuestSpec,
  GuestState,
  HostFacts,
  MigrationParameters,
  MigrationStatus,
  PrepareIncomingRequest,
  PrepareIncomingResult,
  ResumeRequest,
  StartMigrationRequest,
} from '../domain/agent-contract.ts';

export class AgentCallError extends Error {
  constructor(
    readonly agentUrl: string,
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }

  /** 4xx and 501 answers will not change on retry (except 408/429); network errors and other 5xx may. */
  get retryable(): boolean {
    if (this.status === 0 || this.status === 408 || this.status === 429) return true;
    return this.status >= 500 && this.status !== 501;
  }
}

/** A typed client of the host-agent contract (domain/agent-contract.ts). */
export class AgentClient {
  constructor(
    readonly baseUrl: string,
    /** The host's credential, or where to get it from for this URL (activities/agent-credentials.ts). */
    private readonly token: string | AgentCredentials,
    private readonly timeoutMs = 30_000,
  ) {}

  private async credential(): Promise<string> {
    return typeof this.token === 'string' ? this.token : this.token.forUrl(this.baseUrl);
  }

  private async call<T>(method: string, path: string, body?: unknown): Promise<T> {
    const url = `${this.baseUrl.replace(/\/$/, '')}${path}`;
    let res: Response;
    try {
      const credential = await this.credential();
      res = await fetch(url, {
        method,
        headers: {
          authorization: `Bearer ${credential}`,
          ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
        },
        body: body !== undefined ? JSON.stringify(body) : undefined,
        signal: AbortSignal.timeout(this.timeoutMs),
      });
    } catch (err) {
      throw new AgentCallError(
        this.baseUrl,
        0,
        'unreachable',
        `agent ${this.baseUrl}: ${(err as Error).message}`,
      );
    }
    const text = await res.text();
    const parsed: unknown = text ? JSON.parse(text) : null;
    if (!res.ok) {
      const error = (parsed as AgentError | null)?.error;
      throw new AgentCallError(
        this.baseUrl,
        res.status,
        error?.code ?? 'error',
        `agent ${this.baseUrl} ${method} ${path}: ${res.status} ${error?.message ?? text}`,
      );
    }
    return parsed as T;
  }

  health = () => this.call<{ ok: boolean; ready: boolean }>('GET', '/healthz');
  facts = () => this.call<HostFacts>('GET', '/v1/facts');
  setFencing = (armed: boolean) =>
    this.call<{ armed: boolean; enabled: boolean }>('PUT', '/v1/fencing', { armed });
  listGuests = () => this.call<{ guests: GuestState[] }>('GET', '/v1/guests');
  getGuest = (id: string) => this.call<GuestState>('GET', `/v1/guests/${encodeURIComponent(id)}`);
  /** Whether the guest's own guest agent answers guest-ping (false when it has none); 404 for an unknown guest. */
  guestPing = (id: string, timeoutMs?: number) =>
    this.call<GuestPingResult>(
      'POST',
      `/v1/guests/${encodeURIComponent(id)}/guest-ping`,
      timeoutMs === undefined ? undefined : { timeoutMs },
    );
  defineGuest = (spec: GuestSpec) =>
    this.call<GuestState>('PUT', `/v1/guests/${encodeURIComponent(spec.id)}`, spec);
  startGuest = (id: string) => this.call<GuestState>('POST', `/v1/guests/${encodeURIComponent(id)}/start`);
  stopGuest = (id: string) => this.call<GuestState>('POST', `/v1/guests/${encodeURIComponent(id)}/stop`);
  /** Without req (or with {}), a source whose guest went elsewhere is refused (409): see ResumeRequest. */
  resumeGuest = (id: string, req?: ResumeRequest) =>
    this.call<GuestState>('POST', `/v1/guests/${encodeURIComponent(id)}/resume`, req);
  pauseGuest = (id: string) => this.call<GuestState>('POST', `/v1/guests/${encodeURIComponent(id)}/pause`);
  destroyGuest = (id: string) =>
    this.call<{ destroyed: boolean }>('DELETE', `/v1/guests/${encodeURIComponent(id)}`);
  prepareIncoming = (id: string, req: PrepareIncomingRequest) =>
    this.call<PrepareIncomingResult>('POST', `/v1/guests/${encodeURIComponent(id)}/prepare-incoming`, req);
  startMigration = (id: string, req: StartMigrationRequest) =>
    this.call<MigrationStatus>('POST', `/v1/guests/${encodeURIComponent(id)}/migration`, req);
  /** With `wait`, the agent holds the answer until the status is no longer `unless` or waitMs passed. */
  migrationStatus = (id: string, wait?: { waitMs: number; unless: MigrationStatus['status'] }) =>
    this.call<MigrationStatus>(
      'GET',
      `/v1/guests/${encodeURIComponent(id)}/migration` +
        (wait ? `?waitMs=${Math.round(wait.waitMs)}&unless=${encodeURIComponent(wait.unless)}` : ''),
    );
  setMigrationParameters = (id: string, params: MigrationParameters) =>
    this.call<MigrationStatus>('POST', `/v1/guests/${encodeURIComponent(id)}/migration/parameters`, params);
  startPostCopy = (id: string) =>
    this.call<MigrationStatus>('POST', `/v1/guests/${encodeURIComponent(id)}/migration/post-copy`);
  cancelMigration = (id: string) =>
    this.call<MigrationStatus>('POST', `/v1/guests/${encodeURIComponent(id)}/migration/cancel`);
  networkListen = (address: string, ttlMs = 15_000) =>
    this.call<{ address: string; port: number }>('POST', '/v1/network/listen', { address, ttlMs });
  networkConnect = (address: string, port: number, timeoutMs = 3_000) =>
    this.call<{ reachable: boolean; latencyMs: number | null; error: string | null }>(
      'POST',
      '/v1/network/connect',
      {
        address,
        port,
        timeoutMs,
      },
    );
  cleanup = (id: string, req: CleanupRequest) =>
    this.call<{ cleaned: boolean }>('POST', `/v1/guests/${encodeURIComponent(id)}/cleanup`, req);
  /** Cold migration, source: exports a stopped guest's local disk read-only over NBD (idempotent). */
  exportDisk = (id: string, diskId: string, req: DiskExportRequest = {}) =>
    this.call<DiskExportResult>(
      'POST',
      `/v1/guests/${encodeURIComponent(id)}/disks/${encodeURIComponent(diskId)}/export`,
      req,
    );
  /** { stopped: false } when nothing was exported (or the guest is gone). */
  stopDiskExport = (id: string, diskId: string) =>
    this.call<{ stopped: boolean }>(
      'DELETE',
      `/v1/guests/${encodeURIComponent(id)}/disks/${encodeURIComponent(diskId)}/export`,
    );
  /** Cold migration, destination: copies the export into the guest's disk; same nbdUri again = its status. */
  importDisk = (id: string, diskId: string, req: DiskImportRequest) =>
    this.call<DiskCopyStatus>(
      'POST',
      `/v1/guests/${encodeURIComponent(id)}/disks/${encodeURIComponent(diskId)}/import`,
      req,
    );
  /** 404 import_not_found when the agent has none (e.g. after a restart): import again. */
  diskImportStatus = (id: string, diskId: string) =>
    this.call<DiskCopyStatus>(
      'GET',
      `/v1/guests/${encodeURIComponent(id)}/disks/${encodeURIComponent(diskId)}/import`,
    );
}
