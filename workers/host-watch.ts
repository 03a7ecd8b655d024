import { type Client, WorkflowExecutionAlreadyStartedError, WorkflowIdReusePolicy } from '@temporalio/client';
import { setTimeout as sleep } from 'node:timers/promises';
import { Etcd3, type IKeyValue, type Watcher } from 'etcd3';
import { hostHealthPrefix, type EtcdSettings } from '../domain/config.ts';
import { DEFAULT_HOST_DOWN_TIMINGS, type HostDownTimings } from '../domain/host-down-timing.ts';
import { DEFAULT_TIMINGS, type LiveMigrationTimings } from '../domain/live-migration.ts';
import { hostDownWorkflowId, hostReturnWorkflowId } from '../domain/workflow-ids.ts';
import type { HostDownInput } from '../workflows/host-down.ts';

const START_ATTEMPTS = 30;
const START_RETRY_MS = 2_000;

export interface HostWatchOptions {
  etcd: EtcdSettings;
  temporal: Client;
  taskQueue: string;
  log: (line: string) => void;
  timings?: HostDownTimings;
  migrationTimings?: LiveMigrationTimings;
}

/**
 * Watches the hosts' lease-backed health keys and turns each change into a workflow: a key that goes starts
 * `hostDown`, a key that appears under a new lease starts `hostReturn`. Every worker process runs one; the
 * workflow ids (per host and lease) make a second start of the same event a no-op, so they never act twice.
 */
export class HostWatch {
  private readonly client: Etcd3;
  private watcher: Watcher | null = null;
  private stopped = false;

  constructor(private readonly options: HostWatchOptions) {
    this.client = new Etcd3({ hosts: options.etcd.endpoints, dialTimeout: 3000 });
  }

  async start(): Promise<void> {
    const prefix = hostHealthPrefix(this.options.etcd.prefix);
    const watcher = await this.client.watch().prefix(prefix).withPreviousKV().create();
    this.watcher = watcher;
    watcher.on('put', (kv, previous) => {
      if (previous && previous.lease === kv.lease) return;
      void this.startRun('hostReturn', hostIdOf(kv, prefix), kv.lease);
    });
    watcher.on('delete', (kv, previous) => {
      const lease = previous?.lease ?? kv.lease;
      void this.startRun('hostDown', hostIdOf(kv, prefix), lease, stoppedGracefully(previous));
    });
    watcher.on('error', (err) => this.options.log(`host watch: ${err.message}`));
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.watcher?.cancel().catch(() => undefined);
    this.client.close();
  }

  private async startRun(
    kind: 'hostDown' | 'hostReturn',
    hostId: string,
    leaseId: string,
    graceful = false,
  ): Promise<void> {
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
    for (let attempt = 1; ; attempt++) {
      try {
        await this.options.temporal.workflow.start(kind, {
          taskQueue: this.options.taskQueue,
          workflowId,
          args,
          workflowIdReusePolicy: WorkflowIdReusePolicy.REJECT_DUPLICATE,
        });
        this.options.log(`host watch: started ${workflowId}`);
        return;
      } catch (err) {
        if (err instanceof WorkflowExecutionAlreadyStartedError) return;
        // Temporal may be restarting: a lost host must not be forgotten, so keep trying for a while.
        if (this.stopped || attempt >= START_ATTEMPTS) {
          this.options.log(`host watch: could not start ${workflowId}: ${(err as Error).message}`);
          return;
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
