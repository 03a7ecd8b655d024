import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AgentFailure } from '../../agent/errors.ts';
import {
  admitImport,
  admitListenAddress,
  admitMigration,
  admitProbe,
  exportConfirms,
  incomingConfirms,
  incomingView,
  type PeerAccess,
} from '../../agent/migration-target.ts';
import { parseBlockNbdUri, parseExportNbdUri, parseMigrationUri } from '../../agent/migration-uri.ts';
import { type PeerHost, PeerStore } from '../../agent/peers.ts';
import { startMigrationRequestSchema } from '../../domain/agent-contract.ts';

function value<T>(parsed: { ok: true; value: T } | { ok: false; expected: string }): T {
  if (!parsed.ok) throw new Error(parsed.expected);
  return parsed.value;
}

const request = (body: Record<string, unknown>) =>
  startMigrationRequestSchema.parse({ migrationId: 'm-1', ...body });

async function refusal(
  work: Promise<unknown>,
): Promise<{ status: number; code: string; field?: string; message: string }> {
  const error = await work.then(
    () => null,
    (e: unknown) => e,
  );
  if (!(error instanceof AgentFailure)) throw new Error(`expected an AgentFailure, got ${String(error)}`);
  return { status: error.status, code: error.code, field: error.field, message: error.message };
}

describe('what confirms a migration or a copy (pure)', () => {
  const target = value(parseMigrationUri('tcp:10.0.0.2:4000', 'qemu'));
  const nbd = value(parseBlockNbdUri('nbd:10.0.0.2:5000'));

  it('a destination answer confirms the same migration on the same endpoint, and the same NBD one', () => {
    const answer = { migrationId: 'm-1', uri: 'tcp:10.0.0.2:4000', port: 4000, nbdUri: 'nbd:10.0.0.2:5000' };
    expect(incomingConfirms(answer, { migrationId: 'm-1', target, nbd: null }, 'qemu')).toBe('confirmed');
    expect(incomingConfirms(answer, { migrationId: 'm-1', target, nbd }, 'qemu')).toBe('confirmed');
    expect(
      incomingConfirms({ ...answer, migrationId: 'm-2' }, { migrationId: 'm-1', target, nbd }, 'qemu'),
    ).toBe('uri');
    expect(
      incomingConfirms({ ...answer, uri: 'tcp:10.0.0.2:4001' }, { migrationId: 'm-1', target, nbd }, 'qemu'),
    ).toBe('uri');
    expect(incomingConfirms({ ...answer, uri: '' }, { migrationId: 'm-1', target, nbd: null }, 'qemu')).toBe(
      'uri',
    );
    expect(incomingConfirms({ ...answer, nbdUri: null }, { migrationId: 'm-1', target, nbd }, 'qemu')).toBe(
      'nbdUri',
    );
    expect(
      incomingConfirms(
        { ...answer, nbdUri: 'nbd:10.0.0.2:5001' },
        { migrationId: 'm-1', target, nbd },
        'qemu',
      ),
    ).toBe('nbdUri');
    for (const garbage of [
      null,
      'x',
      {},
      { migrationId: 'm-1' },
      { migrationId: 1, uri: 'tcp:10.0.0.2:4000' },
    ]) {
      expect(incomingConfirms(garbage, { migrationId: 'm-1', target, nbd: null }, 'qemu')).toBe('uri');
    }
  });

  it('a sim answer must name the same migration and guest in its uri', () => {
    const uri = 'sim+http://10.0.0.2:9101/v1/internal/sim/migrations/m-1?guest=g-1';
    const sim = value(parseMigrationUri(uri, 'sim'));
    expect(
      incomingConfirms({ migrationId: 'm-1', uri }, { migrationId: 'm-1', target: sim, nbd: null }, 'sim'),
    ).toBe('confirmed');
    const otherGuest = value(parseMigrationUri(uri.replace('g-1', 'g-2'), 'sim'));
    expect(
      incomingConfirms(
        { migrationId: 'm-1', uri },
        { migrationId: 'm-1', target: otherGuest, nbd: null },
        'sim',
      ),
    ).toBe('uri');
  });

  it('a source answer confirms the same export on the same endpoint', () => {
    const exported = value(parseExportNbdUri('nbd://10.0.0.1:4000/data', 'qemu'));
    expect(exportConfirms({ nbdUri: 'nbd://10.0.0.1:4000/data' }, exported, 'qemu')).toBe(true);
    expect(exportConfirms({ nbdUri: 'nbd://10.0.0.1:4001/data' }, exported, 'qemu')).toBe(false);
    expect(exportConfirms({ nbdUri: 'nbd://10.0.0.1:4000/root' }, exported, 'qemu')).toBe(false);
    expect(exportConfirms({ nbdUri: 'nbd://10.0.0.9:4000/data' }, exported, 'qemu')).toBe(false);
    expect(exportConfirms({}, exported, 'qemu')).toBe(false);
    expect(exportConfirms(null, exported, 'qemu')).toBe(false);
  });

  it('shows what a destination prepared with its ports', () => {
    expect(
      incomingView({ migrationId: 'm', uri: 'tcp:10.0.0.2:4000', nbdUri: 'nbd:10.0.0.2:5000' }, 'qemu'),
    ).toEqual({
      migrationId: 'm',
      uri: 'tcp:10.0.0.2:4000',
      port: 4000,
      nbdUri: 'nbd:10.0.0.2:5000',
      nbdPort: 5000,
    });
    // A record whose QEMU has not listened yet.
    expect(incomingView({ migrationId: 'm', uri: '', nbdUri: null }, 'qemu')).toMatchObject({
      port: null,
      nbdPort: null,
    });
  });
});

describe('admission against peer agents (HTTP)', () => {
  // A peer agent: answers GET …/incoming and GET …/export as told, and records the credential it got.
  let server: Server;
  let peerUrl: string;
  const seen: { path: string; auth: string | undefined }[] = [];
  let incoming: unknown = null;
  let exported: unknown = null;

  beforeAll(async () => {
    server = createServer((req, res) => {
      seen.push({ path: req.url ?? '', auth: req.headers.authorization });
      const body = req.url?.endsWith('/incoming') ? incoming : req.url?.endsWith('/export') ? exported : null;
      res.writeHead(body === null ? 404 : 200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body ?? { error: { code: 'not_found', message: 'none' } }));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    peerUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

  const self: PeerHost = {
    id: 'self',
    name: 'self',
    address: '127.0.0.1',
    migrationAddress: null,
    agentUrl: 'http://127.0.0.1:1',
  };
  const access = (peers: PeerHost[]): PeerAccess => ({
    store: new PeerStore({ configured: () => peers }),
    credential: 'peer-secret',
    selfUrl: () => self.agentUrl,
  });
  const peer = (): PeerHost => ({
    id: 'dest',
    name: 'dest',
    address: '10.255.0.1',
    migrationAddress: '127.0.0.1',
    agentUrl: peerUrl,
  });

  it('refuses bad shapes and hosts nobody registered before asking anyone', async () => {
    seen.length = 0;
    const peers = access([self, peer()]);
    expect(
      await refusal(admitMigration(peers, 'qemu', 'g-1', request({ uri: 'exec:touch /tmp/x' }))),
    ).toMatchObject({
      status: 400,
      code: 'invalid_request',
      field: 'uri',
    });
    const unknown = await refusal(
      admitMigration(peers, 'qemu', 'g-1', request({ uri: 'tcp:192.0.2.1:4000' })),
    );
    expect(unknown).toMatchObject({ status: 400, code: 'unknown_peer', field: 'uri' });
    expect(unknown.message).toContain(
      '192.0.2.1 is not an address or migration address of a registered host',
    );
    expect(
      await refusal(
        admitMigration(
          peers,
          'qemu',
          'g-1',
          request({ uri: 'tcp:127.0.0.1:4000', nbdUri: 'nbd:192.0.2.1:5000' }),
        ),
      ),
    ).toMatchObject({ code: 'unknown_peer', field: 'nbdUri' });
    expect(
      await refusal(
        admitMigration(peers, 'qemu', 'g-1', request({ uri: 'tcp:127.0.0.1:4000', nbdUri: 'file:/x' })),
      ),
    ).toMatchObject({ code: 'invalid_request', field: 'nbdUri' });
    expect(
      await refusal(admitMigration(access([]), 'qemu', 'g-1', request({ uri: 'tcp:127.0.0.1:4000' }))),
    ).toMatchObject({ code: 'unknown_peer' });
    expect(seen).toEqual([]);
  });

  it('confirms with the destination agent, with the credential, only the port it prepared', async () => {
    seen.length = 0;
    const peers = access([self, peer()]);
    incoming = { migrationId: 'm-1', uri: 'tcp:127.0.0.1:4000', port: 4000, nbdUri: 'nbd:127.0.0.1:5000' };
    const confirm = await admitMigration(peers, 'qemu', 'g-1', request({ uri: 'tcp:127.0.0.1:4000' }));
    expect(seen).toEqual([]);
    await confirm();
    // Asked once, the destination only (never this agent itself), with the credential.
    expect(seen).toEqual([{ path: '/v1/guests/g-1/incoming', auth: 'Bearer peer-secret' }]);
    await (
      await admitMigration(
        peers,
        'qemu',
        'g-1',
        request({ uri: 'tcp:127.0.0.1:4000', nbdUri: 'nbd:127.0.0.1:5000' }),
      )
    )();

    const otherPort = await admitMigration(peers, 'qemu', 'g-1', request({ uri: 'tcp:127.0.0.1:4001' }));
    const refused = await refusal(otherPort());
    expect(refused).toMatchObject({ status: 400, code: 'not_prepared', field: 'uri' });
    expect(refused.message).toBe(
      "uri: no prepared incoming migration of guest g-1 on 127.0.0.1:4001 for migration m-1 (dest has migration m-1 on 'tcp:127.0.0.1:4000' NBD 'nbd:127.0.0.1:5000')",
    );
    const otherNbd = await admitMigration(
      peers,
      'qemu',
      'g-1',
      request({ uri: 'tcp:127.0.0.1:4000', nbdUri: 'nbd:127.0.0.1:5001' }),
    );
    expect(await refusal(otherNbd())).toMatchObject({ code: 'not_prepared', field: 'nbdUri' });
    const otherMigration = await admitMigration(
      peers,
      'qemu',
      'g-1',
      startMigrationRequestSchema.parse({ migrationId: 'm-2', uri: 'tcp:127.0.0.1:4000' }),
    );
    expect(await refusal(otherMigration())).toMatchObject({ code: 'not_prepared', field: 'uri' });

    incoming = null;
    const none = await refusal(confirm());
    expect(none).toMatchObject({ code: 'not_prepared', field: 'uri' });
    expect(none.message).toContain('(dest answered 404 not_found)');
  });

  it('treats an unreachable destination as one that did not confirm', async () => {
    const dead = { ...peer(), agentUrl: 'http://127.0.0.1:9' };
    const confirm = await admitMigration(
      access([dead]),
      'qemu',
      'g-1',
      request({ uri: 'tcp:127.0.0.1:4000' }),
    );
    expect(await refusal(confirm())).toMatchObject({ code: 'not_prepared', field: 'uri' });
  });

  it('confirms an import with the source agent that exports the disk there', async () => {
    seen.length = 0;
    const peers = access([self, peer()]);
    exported = { nbdUri: 'nbd://10.255.0.1:4000/data' };
    expect(
      await refusal(admitImport(peers, 'qemu', 'g-1', 'data', { nbdUri: 'json:{"driver":"file"}' })),
    ).toMatchObject({ code: 'invalid_request', field: 'nbdUri' });
    expect(
      await refusal(admitImport(peers, 'qemu', 'g-1', 'data', { nbdUri: 'nbd://192.0.2.1:4000/data' })),
    ).toMatchObject({ code: 'unknown_peer', field: 'nbdUri' });
    await (
      await admitImport(peers, 'qemu', 'g-1', 'data', { nbdUri: 'nbd://10.255.0.1:4000/data' })
    )();
    expect(seen).toEqual([{ path: '/v1/guests/g-1/disks/data/export', auth: 'Bearer peer-secret' }]);
    const stale = await admitImport(peers, 'qemu', 'g-1', 'data', { nbdUri: 'nbd://10.255.0.1:4001/data' });
    expect(await refusal(stale())).toMatchObject({ status: 400, code: 'not_prepared', field: 'nbdUri' });
  });

  it("lets a sim migration go only to a registered agent's prepared uri", async () => {
    const agent = { ...peer(), address: '10.255.0.1', migrationAddress: null };
    const uri = `sim+${peerUrl}/v1/internal/sim/migrations/m-1?guest=g-1`;
    incoming = { migrationId: 'm-1', uri };
    await (
      await admitMigration(access([agent]), 'sim', 'g-1', request({ uri }))
    )();
    // The same address on another port is another agent: not a registered one.
    const elsewhere = uri.replace(/:(\d+)\//, (_, port: string) => `:${Number(port) + 1}/`);
    expect(
      await refusal(admitMigration(access([agent]), 'sim', 'g-1', request({ uri: elsewhere }))),
    ).toMatchObject({
      code: 'unknown_peer',
      field: 'uri',
    });
    expect(
      await refusal(admitMigration(access([agent]), 'sim', 'g-1', request({ uri: 'tcp:127.0.0.1:4000' }))),
    ).toMatchObject({ code: 'invalid_request', field: 'uri' });
  });

  it('takes a listen address only as an IP address or host name', () => {
    for (const address of ['127.0.0.1', '::1', '[fd00::2]', 'host-1.example']) admitListenAddress(address);
    for (const address of ['127.0.0.1:0,to=5', '127.0.0.1:4444', 'exec:x', 'a b', '', '0.0.0.0/0']) {
      expect(() => admitListenAddress(address), address).toThrow(/^listenAddress: expected/);
    }
  });

  it('probes only registered addresses', async () => {
    const peers = access([peer()]);
    await admitProbe(peers, '10.255.0.1');
    await admitProbe(peers, '127.0.0.1');
    for (const address of ['192.0.2.1', 'exec:x', '', 'localhost']) {
      expect(await refusal(admitProbe(peers, address)), address).toMatchObject({
        status: 400,
        field: 'address',
      });
    }
  });
});
