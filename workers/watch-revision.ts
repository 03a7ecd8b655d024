import { type Etcd3, GRPCOutOfRangeError } from 'etcd3';

/**
 * The host watch's "processed up to" etcd revision, one for the cluster, kept in etcd under its own key
 * (`hostWatchRevisionKey`): a watch that starts after every worker was down resumes where the last one stopped,
 * so a host lost meanwhile is still seen going.
 */
export class WatchRevision {
  constructor(
    private readonly client: Etcd3,
    private readonly key: string,
  ) {}

  /**
   * The revision a watch starts from: the one after the recorded revision; or, on the very first start or when
   * etcd has compacted that history away, the one after etcd's current revision, which becomes the record.
   */
  async startFrom(log: (line: string) => void): Promise<bigint> {
    const stored = await this.client.get(this.key).string();
    const recorded = stored === null ? null : BigInt(stored);
    if (recorded !== null && !(await this.compacted(recorded + 1n))) return recorded + 1n;
    const now = BigInt((await this.client.get(this.key).exec()).header.revision);
    if (recorded !== null) {
      log(
        `host watch: etcd has compacted its history past the recorded revision ${recorded}; ` +
          `host changes between it and ${now} are lost, watching from revision ${now + 1n}`,
      );
    }
    await this.record(now);
    return now + 1n;
  }

  /**
   * Why no transaction: every worker writes here, and a write that goes backwards (a slower worker recording an
   * older event) only makes the next start replay a few events, which are no-ops (runs' ids are per host and
   * lease, and a second start of one is rejected).
   */
  async record(revision: bigint): Promise<void> {
    await this.client.put(this.key).value(revision.toString());
  }

  private async compacted(revision: bigint): Promise<boolean> {
    try {
      await this.client.get(this.key).revision(revision.toString()).exec();
      return false;
    } catch (err) {
      if (err instanceof GRPCOutOfRangeError && err.message.includes('compacted')) return true;
      throw err;
    }
  }
}
