import { fixedAgentCredential } from '../../activities/agent-credentials.ts';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { ApplicationFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { afterEach, describe, expect, it } from 'vitest';
import { diskCopyActivities, type DiskCopyInput } from '../../activities/disk-copy-activities.ts';
import type { Db } from '../../db/client.ts';

interface Reply {
  status: number;
  body: unknown;
}

const copying = (copiedBytes: number) => ({
  status: 200,
  body: { status: 'copying', copiedBytes, totalBytes: 100, error: null },
});
const completed = {
  status: 200,
  body: { status: 'completed', copiedBytes: 100, totalBytes: 100, error: null },
};
const notFound = (code: string) => ({ status: 404, body: { error: { code, message: `${code} (test)` } } });

/** A destination agent that answers the import routes from a script, recording each request. */
async function scriptedAgent(replies: Reply[]): Promise<{ url: string; requests: string[]; server: Server }> {
  const requests: string[] = [];
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (chunk: Buffer) => (body += chunk.toString()));
    req.on('end', () => {
      requests.push(`${req.method} ${req.url}${body ? ` ${body}` : ''}`);
      const reply = replies.shift() ?? {
        status: 500,
        body: { error: { code: 'script_ended', message: 'no more' } },
      };
      res.writeHead(reply.status, { 'content-type': 'application/json' }).end(JSON.stringify(reply.body));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, requests, server };
}

/** saveProgress's update, recorded instead of written. */
function progressDb(saved: unknown[]): Db {
  const where = async () => undefined;
  return { update: () => ({ set: (values: unknown) => (saved.push(values), { where }) }) } as unknown as Db;
}

const POST = 'POST /v1/guests/g-1/disks/data/import {"nbdUri":"nbd://127.0.0.1:10809/data"}';
const GET = 'GET /v1/guests/g-1/disks/data/import';

describe('copyLocalDisk: a destination agent that restarts mid-copy', () => {
  const servers: Server[] = [];
  afterEach(() => servers.splice(0).forEach((s) => s.close()));

  const copy = async (replies: Reply[]) => {
    const agent = await scriptedAgent(replies);
    servers.push(agent.server);
    const saved: unknown[] = [];
    const input: DiskCopyInput = {
      migrationId: 'm-1',
      guestId: 'g-1',
      diskId: 'data',
      sourceAgentUrl: 'http://127.0.0.1:1',
      destinationAgentUrl: agent.url,
      nbdUri: 'nbd://127.0.0.1:10809/data',
      index: 0,
      count: 1,
      pollIntervalMs: 10,
    };
    const activities = diskCopyActivities({
      db: progressDb(saved),
      agentCredentials: fixedAgentCredential('t'),
    });
    const result = new MockActivityEnvironment().run(activities.copyLocalDisk, input);
    return { result, requests: agent.requests, saved };
  };

  it('posts the import again on 404 import_not_found and follows it to the end', async () => {
    const { result, requests, saved } = await copy([
      copying(0),
      copying(50),
      notFound('import_not_found'),
      copying(0),
      completed,
    ]);
    expect(await result).toEqual({ copiedBytes: 100, totalBytes: 100 });
    expect(requests).toEqual([POST, GET, GET, POST, GET]);
    expect(saved.map((s) => (s as { progress: { percent: number } }).progress.percent)).toEqual([0, 50, 0]);
  });

  it('posts it again once: a 404 straight after the re-post fails the copy', async () => {
    const { result, requests } = await copy([
      copying(0),
      notFound('import_not_found'),
      copying(0),
      notFound('import_not_found'),
    ]);
    const failure = await result.then(
      () => null,
      (err: unknown) => err,
    );
    expect(failure).toBeInstanceOf(ApplicationFailure);
    expect(failure).toMatchObject({ nonRetryable: true, type: 'Agent404' });
    expect(requests).toEqual([POST, GET, POST, GET]);
  });

  it('does not post again on another 404 (the agent does not know the guest)', async () => {
    const { result, requests } = await copy([copying(0), notFound('guest_not_found')]);
    await expect(result).rejects.toMatchObject({ nonRetryable: true, type: 'Agent404' });
    expect(requests).toEqual([POST, GET]);
  });
});
