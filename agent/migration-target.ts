import { z } from 'zod';
import type {
  DiskImportRequest,
  IncomingMigration,
  PrepareIncomingResult,
  StartMigrationRequest,
} from '../domain/agent-contract.ts';
import { AgentFailure } from './errors.ts';
import { errorMessage } from './log.ts';
import {
  agentEndpoint,
  canonicalHost,
  type DriverKind,
  type Endpoint,
  endpointText,
  type ExportTarget,
  type MigrationTarget,
  type Parsed,
  parseBlockNbdUri,
  parseExportNbdUri,
  parseMigrationUri,
  quoted,
  sameEndpoint,
  type SimTarget,
} from './migration-uri.ts';
import { peerRequest } from './peer-client.ts';
import { type PeerHost, peerHasAddress, peersOwning, type PeerStore, peersWithAddress } from './peers.ts';

/**
 * Where an agent lets a caller send a guest's memory, its disks, or a probe: only to a registered host
 * (agent/peers.ts), and for a migration or a disk copy only to the port that host's agent says it
 * prepared for that guest. The route checks the uri's shape and its host before anything runs, and
 * hands the driver a confirmation to run once it decided to start (a retry of the same migration or
 * import answers with its status without asking the peer again).
 */

export interface PeerAccess {
  store: PeerStore;
  /** What this agent presents to its peers (see peer-client.ts). */
  credential: string;
  /** This agent's own base URL: it never confirms to itself. */
  selfUrl: () => string;
  timeoutMs?: number;
}

/** Runs once the driver decided to start: throws a 400 unless the peer confirms. */
export type Confirmation = () => Promise<void>;

function invalid(field: string, message: string, code = 'invalid_request'): AgentFailure {
  return new AgentFailure(400, code, `${field}: ${message}`, field);
}

function parsedOr400<T>(parsed: Parsed<T>, field: string, value: string): T {
  if (!parsed.ok) throw invalid(field, `expected ${parsed.expected}, got ${quoted(value)}`);
  return parsed.value;
}

function unknownPeer(field: string, endpoint: Endpoint, owner: 'address' | 'agent', store: PeerStore) {
  const what =
    owner === 'agent'
      ? `${endpointText(endpoint)} is not the agent of a registered host (other than this one)`
      : `${endpoint.host} is not an address or migration address of a registered host (other than this one)`;
  return invalid(field, `${what} (peers: ${store.source()})`, 'unknown_peer');
}

/** An answer of GET /v1/guests/:id/incoming, as far as the confirmation reads it. */
const incomingAnswerSchema = z.object({
  migrationId: z.string(),
  uri: z.string(),
  nbdUri: z.string().nullable().optional(),
});

/**
 * Whether a destination's answer confirms the request: same migration, same stream endpoint (sim: same
 * migration and guest in the uri) and, for a block migration, the same NBD endpoint. Names the field
 * that does not match.
 */
export function incomingConfirms(
  answer: unknown,
  expected: { migrationId: string; target: MigrationTarget; nbd: MigrationTarget | null },
  driver: DriverKind,
): 'confirmed' | 'uri' | 'nbdUri' {
  const parsed = incomingAnswerSchema.safeParse(answer);
  if (!parsed.success || parsed.data.migrationId !== expected.migrationId) return 'uri';
  const prepared = parseMigrationUri(parsed.data.uri, driver);
  if (!prepared.ok || !sameEndpoint(prepared.value.endpoint, expected.target.endpoint)) return 'uri';
  if ('migrationId' in expected.target && 'migrationId' in prepared.value) {
    const [want, got] = [expected.target as SimTarget, prepared.value as SimTarget];
    if (want.migrationId !== got.migrationId || want.guestId !== got.guestId) return 'uri';
  }
  if (expected.nbd === null) return 'confirmed';
  const nbd = parsed.data.nbdUri == null ? null : parseBlockNbdUri(parsed.data.nbdUri);
  return nbd?.ok && sameEndpoint(nbd.value.endpoint, expected.nbd.endpoint) ? 'confirmed' : 'nbdUri';
}

/** GET /v1/guests/:id/incoming: a destination's migration record with the ports it names. */
export function incomingView(
  incoming: Pick<PrepareIncomingResult, 'migrationId' | 'uri' | 'nbdUri'>,
  driver: DriverKind,
): IncomingMigration {
  const stream = parseMigrationUri(incoming.uri, driver);
  const nbd = incoming.nbdUri === null ? null : parseBlockNbdUri(incoming.nbdUri);
  return {
    migrationId: incoming.migrationId,
    uri: incoming.uri,
    port: stream.ok ? stream.value.endpoint.port : null,
    nbdUri: incoming.nbdUri,
    nbdPort: nbd?.ok ? nbd.value.endpoint.port : null,
  };
}

/** Whether a source's answer to GET …/export is the export the import names. */
export function exportConfirms(answer: unknown, expected: ExportTarget, driver: DriverKind): boolean {
  const nbdUri = (answer as { nbdUri?: unknown } | null)?.nbdUri;
  if (typeof nbdUri !== 'string') return false;
  const running = parseExportNbdUri(nbdUri, driver);
  return (
    running.ok &&
    sameEndpoint(running.value.endpoint, expected.endpoint) &&
    running.value.exportName === expected.exportName
  );
}

function isSelf(peer: PeerHost, access: PeerAccess): boolean {
  const mine = agentEndpoint(access.selfUrl());
  const theirs = agentEndpoint(peer.agentUrl);
  return mine !== null && theirs !== null && sameEndpoint(mine, theirs);
}

interface Asked {
  /** The bodies of the 200 answers. */
  answers: unknown[];
  /** What each peer said, for the refusal's message: why nobody confirmed. */
  notes: string;
}

/** What a peer's answer names (a uri or nbdUri: no secret in either), for messages. */
function answered(body: unknown): string {
  const { uri, nbdUri, migrationId } = (body ?? {}) as Record<string, unknown>;
  const parts = [
    typeof migrationId === 'string' ? `migration ${migrationId}` : null,
    typeof uri === 'string' ? `on ${quoted(uri)}` : null,
    typeof nbdUri === 'string' ? `NBD ${quoted(nbdUri)}` : null,
  ];
  return parts.filter((part) => part !== null).join(' ') || 'something else';
}

/**
 * The registered hosts but this one that own the target: a guest never goes to its own host, and hosts
 * may share an address (agents on one machine), so this host owning it too must not stop the look-up
 * (and the refresh) for the one just registered.
 */
function otherOwners(target: MigrationTarget, peers: readonly PeerHost[], access: PeerAccess): PeerHost[] {
  return peersOwning(target, peers).filter((peer) => !isSelf(peer, access));
}

/** Asks every owner but this agent; unreachable ones and refusals confirm nothing. */
async function askOwners(owners: PeerHost[], access: PeerAccess, path: string): Promise<Asked> {
  const others = owners.filter((peer) => !isSelf(peer, access));
  if (others.length === 0) return { answers: [], notes: 'no other registered host has that address' };
  const replies = await Promise.all(
    others.map(async (peer) => {
      try {
        const reply = await peerRequest(`${peer.agentUrl.replace(/\/$/, '')}${path}`, access.credential, {
          timeoutMs: access.timeoutMs,
        });
        if (reply.status === 200)
          return { body: reply.body, note: `${peer.name} has ${answered(reply.body)}` };
        const code = (reply.body as { error?: { code?: unknown } } | null)?.error?.code;
        return {
          body: undefined,
          note: `${peer.name} answered ${reply.status}${typeof code === 'string' ? ` ${code}` : ''}`,
        };
      } catch (error) {
        return { body: undefined, note: `${peer.name} did not answer (${errorMessage(error)})` };
      }
    }),
  );
  return {
    answers: replies.filter((reply) => reply.body !== undefined).map((reply) => reply.body),
    notes: replies.map((reply) => reply.note).join('; '),
  };
}

/**
 * POST /v1/guests/:id/migration: the uri (and a block migration's nbdUri) must be a registered host's,
 * in the shape the driver's prepare-incoming returns. Returns the confirmation the driver runs before
 * it starts: the destination must have prepared this migration of this guest on that port.
 */
export async function admitMigration(
  access: PeerAccess,
  driver: DriverKind,
  guestId: string,
  request: StartMigrationRequest,
): Promise<Confirmation> {
  // A sim uri also names its migration and guest: the confirmation checks them against what the
  // destination prepared (a mismatch is the driver's conflict first, as for QEMU).
  const target = parsedOr400(parseMigrationUri(request.uri, driver), 'uri', request.uri);
  const nbd =
    request.nbdUri === undefined
      ? null
      : parsedOr400(parseBlockNbdUri(request.nbdUri), 'nbdUri', request.nbdUri);
  const owners = await access.store.find((peers) => otherOwners(target, peers, access));
  if (owners.length === 0) throw unknownPeer('uri', target.endpoint, target.owner, access.store);
  if (nbd !== null && !owners.some((peer) => peerHasAddress(peer, nbd.endpoint.host))) {
    throw invalid(
      'nbdUri',
      `${nbd.endpoint.host} is not an address of the host that uri names (${owners.map((p) => p.name).join(', ')})`,
      'unknown_peer',
    );
  }
  return async () => {
    const { answers, notes } = await askOwners(
      owners.filter((peer) => nbd === null || peerHasAddress(peer, nbd.endpoint.host)),
      access,
      `/v1/guests/${encodeURIComponent(guestId)}/incoming`,
    );
    const verdicts = answers.map((answer) =>
      incomingConfirms(answer, { migrationId: request.migrationId, target, nbd }, driver),
    );
    if (verdicts.includes('confirmed')) return;
    if (verdicts.includes('nbdUri') && nbd !== null) {
      throw invalid(
        'nbdUri',
        `no NBD export of guest ${guestId} prepared on ${endpointText(nbd.endpoint)} for migration ${request.migrationId} (${notes})`,
        'not_prepared',
      );
    }
    throw invalid(
      'uri',
      `no prepared incoming migration of guest ${guestId} on ${endpointText(target.endpoint)} for migration ${request.migrationId} (${notes})`,
      'not_prepared',
    );
  };
}

/**
 * POST /v1/guests/:id/disks/:diskId/import: the nbdUri must be a registered host's export in the shape
 * the driver's export returns; the confirmation asks that host's agent whether it exports this disk there.
 */
export async function admitImport(
  access: PeerAccess,
  driver: DriverKind,
  guestId: string,
  diskId: string,
  request: DiskImportRequest,
): Promise<Confirmation> {
  const target = parsedOr400(parseExportNbdUri(request.nbdUri, driver), 'nbdUri', request.nbdUri);
  const owners = await access.store.find((peers) => otherOwners(target, peers, access));
  if (owners.length === 0) throw unknownPeer('nbdUri', target.endpoint, target.owner, access.store);
  return async () => {
    const { answers, notes } = await askOwners(
      owners,
      access,
      `/v1/guests/${encodeURIComponent(guestId)}/disks/${encodeURIComponent(diskId)}/export`,
    );
    if (answers.some((answer) => exportConfirms(answer, target, driver))) return;
    throw invalid(
      'nbdUri',
      `no export of disk ${diskId} of guest ${guestId} on ${endpointText(target.endpoint)} (${notes})`,
      'not_prepared',
    );
  };
}

/**
 * prepare-incoming's and a disk export's listenAddress: where this host listens, an IP address or a host
 * name and nothing more (prepare-incoming builds QEMU's `tcp:<address>:0` from it).
 */
export function admitListenAddress(address: string): void {
  if (canonicalHost(address) === null) {
    throw invalid(
      'listenAddress',
      `expected an IP address or host name of this host, got ${quoted(address)}`,
    );
  }
}

/** POST /v1/network/connect: only to a registered host's address or migration address. */
export async function admitProbe(access: PeerAccess, address: string): Promise<void> {
  const host = canonicalHost(address);
  if (host === null) {
    throw invalid('address', `expected an IP address or host name, got ${quoted(address)}`);
  }
  const owners = await access.store.find((peers) => peersWithAddress(host, peers));
  if (owners.length === 0) {
    throw invalid(
      'address',
      `${host} is not an address or migration address of a registered host (peers: ${access.store.source()})`,
      'unknown_peer',
    );
  }
}
