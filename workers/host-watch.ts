import { type Client, WorkflowExecutionAlreadyStartedError, WorkflowIdReusePolicy } from '@temporalio/client';
import { setTimeout as sleep } from 'node:timers/promises';
import { Etcd3, type IKeyValue, type Watcher } from 'etcd3';
import { readFileSync } from 'node:fs';
import {
  etcdClientOptions,
  hostHealthPrefix,
  hostWatchRevisionKey,
  type EtcdSettings,
} from '../domain/config.ts';
import { DEFAULT_HOST_DOWN_TIMINGS, type HostDownTimings } from '../domain/host-down-timing.ts';
import { DEFAULT_TIMINGS, type LiveMigrationTimings } from '../domain/live-migration.ts';
import { hostDownWorkflowId, hostReturnWorkflowId } from '../domain/workflow-ids.ts';
import { hostEventSummary } from '../domain/workflow-summaries.ts';
import type { HostDownInput } from '../workflows/host-down.ts';
import { SourceHostKey } from '../workflows/search-attributes.ts';
import { WatchRevision } from './watch-revision.ts';

const START_ATTEMPTS = 30;
const START_RETRY_MS = 2_000;

export interface HostWatchOptions {
  etcd: EtcdSettings;
  temporal: Client;
  taskQueue: string;
  log: (line: string) => void;
  timings?: HostDownTimings;
  migrationTimings?: LiveMigrationTimings;
  /** A host's name for the run's summary and search attribute; the id stands in when it cannot be read. */
  hostName?: (hostId: string) => Promise<string | undefined>;
}

/**
 * Watches the hosts' lease-backed health keys and turns each change into a workflow: a key that goes starts
 * `hostDown`, a key that appears under a new lease starts `hostReturn`. Every worker process runs one; the
 * workflow ids (per host and lease) make a second start of the same event a no-op, so they never act twice.
 * The watch resumes from the last revision any watcher handled (WatchRevision), so a host lost while no worker
 * ran is still acted on when one starts.
 */
export class HostWatch {
  private readonly client: Etcd3;
  private readonly revision: WatchRevision;
  private watcher: Watcher | null = null;
  private stopped = false;
  /** Events are handled one after another, so a revision is recorded only once every earlier event is. */
  private queue: Promise<void> = Promise.resolve();
  /** Set once a run could not be started: no later revision is recorded, so the next watch replays it. */
  private behind = false;

  constructor(private readonly options: HostWatchOptions) {
    this.client = new Etcd3(etcdClientOptions(options.etcd, readFileSync));
    this.revision = new WatchRevision(this.client, hostWatchRevisionKey(options.etcd.prefix));
  }

  async start(): Promise<void> {
    const prefix = hostHealthPrefix(this.options.etcd.prefix);
    const from = await this.revision.startFrom(this.options.log);
    const watcher = await this.client
      .watch()
      .prefix(prefix)
      .withPreviousKV()
      .startRevision(from.toString())
      .create();
    this.watcher = watcher;
    watcher.on('put', (kv, previous) => {
      // `previous` is null (not undefined) for a key that is new.
      const sameLease = previous?.lease === kv.lease;
      this.handle(kv, sameLease ? null : () => this.startRun('hostReturn', hostIdOf(kv, prefix), kv.lease));
    });
    watcher.on('delete', (kv, previous) => {
      const lease = previous?.lease ?? kv.lease;
      this.handle(kv, () =>
        this.startRun('hostDown', hostIdOf(kv, prefix), lease, stoppedGracefully(previous)),
      );
    });
    watcher.on('error', (err) => {
      this.options.log(`host watch: ${err.message}`);
      // etcd cancels a watch whose history it has compacted (say, after a long disconnection): start over.
      if (!err.message.startsWith('Watcher canceled') || this.stopped) return;
      void sleep(START_RETRY_MS)
        .then(() => (this.stopped ? undefined : this.start()))
        .catch((e: Error) => this.options.log(`host watch: could not watch again: ${e.message}`));
    });
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.watcher?.cancel().catch(() => undefined);
    await this.queue;
    this.client.close();
  }

  /** Queues an event's run (`null`: it needs none) and, once the run is started, records its revision. */
  private handle(kv: IKeyValue, run: (() => Promise<boolean>) | null): void {
    this.queue = this.queue
      .then(async () => {
        if (run !== null && !(await run())) this.behind = true;
        if (!this.behind) await this.revision.record(BigInt(kv.mod_revision));
      })
      .catch((err: Error) =>
        this.options.log(`host watch: could not record revision ${kv.mod_revision}: ${err.message}`),
      );
  }

  private async startRun(
    kind: 'hostDown' | 'hostReturn',
    hostId: string,
    leaseId: string,
    graceful = false,
  ): Promise<boolean> {
    const lease = BigInt(leaseId || '0').toString(16);
    const workflowId =
      kind === 'hostDown' ? hostDownWorkflowId(hostId, lease) : hostReturnWorkflowId(hostId, lease);
    const args =
      kind === 'hostDown'
        ? [
            {
              hostId,
              leaseId: lease,
              cause: graceful ? 'shutdown' : 'down',
              timings: this.options.timings ?? DEFAULT_HOST_DOWN_TIMINGS,
              migrationTimings: this.options.migrationTimings ?? DEFAULT_TIMINGS,
            } satisfies HostDownInput,
          ]
        : [{ hostId, leaseId: lease }];
    // The id stays the host's id on every worker (they must agree); the name is for the operator.
    const hostName = (await this.options.hostName?.(hostId).catch(() => undefined)) ?? hostId;
    for (let attempt = 1; ; attempt++) {
      try {
        await this.options.temporal.workflow.start(kind, {
          taskQueue: this.options.taskQueue,
          workflowId,
          args,
          workflowIdReusePolicy: WorkflowIdReusePolicy.REJECT_DUPLICATE,
          staticSummary: hostEventSummary(hostName, kind === 'hostDown' ? 'down' : 'back'),
          typedSearchAttributes: [{ key: SourceHostKey, value: hostName }],
        });
        this.options.log(`host watch: started ${workflowId}`);
        return true;
      } catch (err) {
        if (err instanceof WorkflowExecutionAlreadyStartedError) return true;
        // Temporal may be restarting: a lost host must not be forgotten, so keep trying for a while.
        if (this.stopped || attempt >= START_ATTEMPTS) {
          this.options.log(
            `host watch: could not start ${workflowId}: ${(err as Error).message}; ` +
              'the recorded revision stays before it, so the next start of a watch tries again',
          );
          return false;
        }
        await sleep(START_RETRY_MS);
      }
    }
  }
}

function hostIdOf(kv: IKeyValue, prefix: string): string {
  return kv.key.toString().slice(prefix.length);
}

/** An agent that stops on purpose marks its key before it revokes the lease (agent/liveness.ts). */
function stoppedGracefully(previous: IKeyValue | undefined): boolean {
  if (!previous) return false;
  try {
    return (JSON.parse(previous.value.toString()) as { stopping?: boolean }).stopping === true;
  } catch {
    return false;
  }
}
