import type { AgentCredentials } from './agent-credentials.ts';
import { Context, log } from '@temporalio/activity';
import type { Db } from '../db/client.ts';
import { saveProgress } from '../db/migration-store.ts';
import { AgentCallError, AgentClient } from './agent-client.ts';
import { agentCall } from './agent-errors.ts';

export interface DiskCopyDeps {
  db: Db;
  agentCredentials: AgentCredentials;
}

export interface DiskCopyInput {
  migrationId: string;
  guestId: string;
  diskId: string;
  sourceAgentUrl: string;
  destinationAgentUrl: string;
  nbdUri: string;
  /** Read the export over TLS, checking that the source's certificate names tlsHostname (its host name). */
  tls?: boolean;
  tlsHostname?: string;
  /** Where this disk's copy stands among the guest's local disks, for the row's progress. */
  index: number;
  count: number;
  pollIntervalMs: number;
}

/**
 * A cold migration's local disks: the source exports each one read-only over NBD, the destination copies it into
 * its own image. The copy is one heartbeating activity that (re)starts the import, which the agent makes
 * idempotent, and follows it to the end, saving its progress on the migration row. A destination agent that
 * restarts mid-copy forgets the import (404 import_not_found): the copy posts it again and follows that.
 */
export function diskCopyActivities({ db, agentCredentials }: DiskCopyDeps) {
  const agent = (url: string) => new AgentClient(url, agentCredentials);
  return {
    /** With tls, the export admits only destinationHost's certificate. Both absent in older histories. */
    async exportLocalDisk(input: {
      agentUrl: string;
      guestId: string;
      diskId: string;
      tls?: boolean;
      destinationHost?: string;
    }): Promise<string> {
      const request = input.tls
        ? { tls: true, ...(input.destinationHost ? { destinationHost: input.destinationHost } : {}) }
        : {};
      return (await agentCall(() => agent(input.agentUrl).exportDisk(input.guestId, input.diskId, request)))
        .nbdUri;
    },

    async stopLocalDiskExport(input: { agentUrl: string; guestId: string; diskId: string }): Promise<void> {
      await agentCall(() => agent(input.agentUrl).stopDiskExport(input.guestId, input.diskId));
    },

    async copyLocalDisk(input: DiskCopyInput): Promise<{ copiedBytes: number; totalBytes: number }> {
      const ctx = Context.current();
      const destination = agent(input.destinationAgentUrl);
      const startImport = () =>
        destination.importDisk(input.guestId, input.diskId, {
          nbdUri: input.nbdUri,
          ...(input.tls ? { tls: true } : {}),
          ...(input.tls && input.tlsHostname ? { tlsHostname: input.tlsHostname } : {}),
        });
      let status = await agentCall(startImport);
      // One re-post per forgotten import: a 404 again before the agent has answered a status fails the copy.
      let reposted = false;
      while (status.status === 'copying') {
        ctx.heartbeat(status);
        await saveProgress(db, input.migrationId, {
          status: 'copying-disks',
          disk: input.diskId,
          diskIndex: input.index + 1,
          diskCount: input.count,
          transferredBytes: status.copiedBytes,
          totalBytes: status.totalBytes,
          percent:
            status.totalBytes > 0 ? Math.round((status.copiedBytes / status.totalBytes) * 1000) / 10 : 0,
        });
        await ctx.sleep(input.pollIntervalMs);
        status = await agentCall(async () => {
          try {
            const current = await destination.diskImportStatus(input.guestId, input.diskId);
            reposted = false;
            return current;
          } catch (err) {
            if (reposted || !importForgotten(err)) throw err;
            reposted = true;
            log.warn('the destination agent has no import of the disk (restarted?): importing again', {
              diskId: input.diskId,
            });
            return startImport();
          }
        });
      }
      if (status.status === 'failed') {
        throw new Error(`copy of disk ${input.diskId} failed: ${status.error ?? 'no reason given'}`);
      }
      return { copiedBytes: status.copiedBytes, totalBytes: status.totalBytes };
    },
  };
}

function importForgotten(err: unknown): boolean {
  return err instanceof AgentCallError && err.status === 404 && err.code === 'import_not_found';
}
