import { describe, expect, it } from 'vitest';
import { simExportUri } from '../../agent/drivers/sim.ts';
import { simUri } from '../../agent/drivers/sim-peer.ts';
import { nbdExportUri } from '../../agent/drivers/qemu-disk-copy.ts';
import { nbdUri } from '../../agent/guest-rules.ts';
import {
  agentEndpoint,
  canonicalHost,
  endpointText,
  parseBlockNbdUri,
  parseExportNbdUri,
  parseMigrationUri,
  quoted,
  sameEndpoint,
} from '../../agent/migration-uri.ts';

/** Every transport QEMU (or a confused caller) could be handed that is not a plain tcp: stream. */
const HOSTILE = [
  'exec:touch /tmp/pwned',
  'exec:',
  'EXEC:touch /tmp/x',
  'file:/tmp/x',
  'file:///tmp/x',
  'unix:/tmp/qmp.sock',
  'unix:',
  'fd:3',
  'fd:migfd',
  'rdma:127.0.0.1:4444',
  'vsock:3:4444',
  'channels:x',
  'json:{"driver":"file"}',
  'tcp:127.0.0.1:4444,ipv4=on',
  'tcp:127.0.0.1:4444,to=4500',
  'tcp:127.0.0.1:4444 ',
  ' tcp:127.0.0.1:4444',
  'tcp:127.0.0.1:4444\n',
  'tcp:127.0.0.1:4444;exec:x',
  'tcp:127.0.0.1',
  'tcp::4444',
  'tcp:127.0.0.1:',
  'tcp:127.0.0.1:0',
  'tcp:127.0.0.1:65536',
  'tcp:127.0.0.1:099',
  'tcp:127.0.0.1:-1',
  'tcp:127.0.0.1:4444:5',
  'tcp:::1:4444',
  'tcp:[::1:4444',
  'tcp:[zz::1]:4444',
  'tcp:300.1.1.1:4444',
  'tcp:1.2.3:4444',
  'tcp:-host:4444',
  'tcp:host-:4444',
  'tcp:ho_st:4444',
  'tcp:host/../x:4444',
  'tcp://127.0.0.1:4444',
  'TCP:127.0.0.1:4444',
  'tcp: 127.0.0.1:4444',
  'nbd:127.0.0.1:4444',
  'sim+http://127.0.0.1:9102/v1/internal/sim/migrations/m?guest=g',
  '127.0.0.1:4444',
  '',
  'garbage',
];

describe('migration uris a qemu agent accepts', () => {
  it('takes tcp:<host>:<port> with IPv4, bracketed IPv6 or a host name', () => {
    expect(parseMigrationUri('tcp:127.0.0.1:49152', 'qemu')).toEqual({
      ok: true,
      value: { endpoint: { host: '127.0.0.1', port: 49152 }, owner: 'address' },
    });
    expect(parseMigrationUri('tcp:[::1]:1', 'qemu')).toMatchObject({
      ok: true,
      value: { endpoint: { host: '::1', port: 1 } },
    });
    expect(parseMigrationUri('tcp:[0:0:0:0:0:0:0:1]:65535', 'qemu')).toMatchObject({
      ok: true,
      value: { endpoint: { host: '::1', port: 65535 } },
    });
    expect(parseMigrationUri('tcp:Host-2.Example.com:4444', 'qemu')).toMatchObject({
      ok: true,
      value: { endpoint: { host: 'host-2.example.com', port: 4444 } },
    });
  });

  it('refuses every other transport and anything malformed, saying what it expects', () => {
    for (const uri of HOSTILE) {
      const parsed = parseMigrationUri(uri, 'qemu');
      expect(parsed.ok, JSON.stringify(uri)).toBe(false);
      if (!parsed.ok) {
        expect(parsed.expected).toContain('tcp:<host>:<port>');
        expect(parsed.expected).toContain('exec:');
      }
    }
  });

  it("reads what a qemu destination's prepare-incoming returns", () => {
    expect(parseMigrationUri('tcp:127.0.0.1:40000', 'qemu').ok).toBe(true);
    expect(parseMigrationUri(`tcp:[fd00::2]:40000`, 'qemu').ok).toBe(true);
  });
});

describe('migration uris a sim agent accepts', () => {
  const uri = simUri('http://127.0.0.1:9102', 'm 1/x', 'g-1');

  it("takes the destination agent's sim+http uri, naming the migration and the guest", () => {
    expect(parseMigrationUri(uri, 'sim')).toEqual({
      ok: true,
      value: {
        endpoint: { host: '127.0.0.1', port: 9102 },
        owner: 'agent',
        migrationId: 'm 1/x',
        guestId: 'g-1',
      },
    });
    expect(parseMigrationUri(simUri('https://agent-2.example', 'm', 'g'), 'sim')).toMatchObject({
      ok: true,
      value: { endpoint: { host: 'agent-2.example', port: 443 } },
    });
    expect(parseMigrationUri(simUri('http://agent-2.example', 'm', 'g'), 'sim')).toMatchObject({
      ok: true,
      value: { endpoint: { host: 'agent-2.example', port: 80 } },
    });
  });

  it('refuses tcp:, exec: and every other shape', () => {
    for (const bad of [
      ...HOSTILE.filter((u) => !u.startsWith('sim+')),
      'tcp:127.0.0.1:4444',
      `${uri}&key=x`,
      `${uri} `,
      uri.replace('sim+http', 'sim+ftp'),
      uri.replace('/v1/internal/sim/migrations/', '/v1/guests/'),
      uri.replace('?guest=g-1', ''),
      uri.replace('?guest=g-1', '?guest='),
      uri.replace('m%201%2Fx', '%E0%A4%A'),
      'sim+http://127.0.0.1:9102/v1/internal/sim/migrations/m/events?guest=g',
    ]) {
      const parsed = parseMigrationUri(bad, 'sim');
      expect(parsed.ok, JSON.stringify(bad)).toBe(false);
      if (!parsed.ok) expect(parsed.expected).toContain('sim+http://');
    }
  });
});

describe('NBD uris', () => {
  it("takes a block migration's nbd:<host>:<port> as prepare-incoming returns it", () => {
    expect(parseBlockNbdUri(nbdUri('127.0.0.1', 10809))).toEqual({
      ok: true,
      value: { endpoint: { host: '127.0.0.1', port: 10809 }, owner: 'address' },
    });
    expect(parseBlockNbdUri(nbdUri('fd00::2', 4000))).toMatchObject({
      ok: true,
      value: { endpoint: { host: 'fd00::2', port: 4000 } },
    });
    for (const bad of [
      'nbd://127.0.0.1:10809/data',
      'nbd:unix:/tmp/nbd.sock',
      'nbd:127.0.0.1:10809:exportname=x',
      'nbd:127.0.0.1:0',
      'exec:nbd',
      'tcp:127.0.0.1:10809',
      'json:{"driver":"nbd"}',
      '',
    ]) {
      const parsed = parseBlockNbdUri(bad);
      expect(parsed.ok, bad).toBe(false);
      if (!parsed.ok) expect(parsed.expected).toContain('nbd:<host>:<port>');
    }
  });

  it("takes a cold copy's nbd://<host>:<port>/<export> (qemu) and sim+nbd:// (sim)", () => {
    expect(parseExportNbdUri(nbdExportUri('127.0.0.1', 4000, 'data'), 'qemu')).toEqual({
      ok: true,
      value: { endpoint: { host: '127.0.0.1', port: 4000 }, owner: 'address', exportName: 'data' },
    });
    expect(parseExportNbdUri(simExportUri('http://127.0.0.1:9101', 'g-1', 'data'), 'sim')).toEqual({
      ok: true,
      value: { endpoint: { host: '127.0.0.1', port: 9101 }, owner: 'agent', exportName: 'g-1/data' },
    });
    for (const bad of [
      'nbd:127.0.0.1:4000',
      'nbd://127.0.0.1:4000/da ta',
      'nbd://127.0.0.1:4000/data?socket=/tmp/x',
      'nbd+unix:///data?socket=/tmp/x',
      'nbds://127.0.0.1:4000/data',
      'file:///etc/passwd',
      'json:{"driver":"file","filename":"/etc/shadow"}',
      'exec:cat /etc/shadow',
      '/etc/passwd',
      '',
    ]) {
      expect(parseExportNbdUri(bad, 'qemu').ok, bad).toBe(false);
    }
    for (const bad of [
      'nbd://127.0.0.1:4000/data',
      'sim+nbd://127.0.0.1:9101/g-1',
      'sim+nbd://127.0.0.1:9101/g/d/x',
    ]) {
      expect(parseExportNbdUri(bad, 'sim').ok, bad).toBe(false);
    }
  });
});

describe('hosts and endpoints', () => {
  it('canonicalises hosts so that a uri and a registered address compare', () => {
    expect(canonicalHost('127.0.0.1')).toBe('127.0.0.1');
    expect(canonicalHost('[::1]')).toBe('::1');
    expect(canonicalHost('0:0::1')).toBe('::1');
    expect(canonicalHost('FD00::A')).toBe('fd00::a');
    expect(canonicalHost('Host-1.Example')).toBe('host-1.example');
    for (const bad of [
      '',
      '300.0.0.1',
      '127.000.0.1',
      '1.2.3',
      '[127.0.0.1]',
      'a b',
      'a/b',
      '-a',
      'a-',
      '[::1',
      'x'.repeat(254),
    ]) {
      expect(canonicalHost(bad), bad).toBeNull();
    }
  });

  it("reads an agent URL's endpoint, default ports included", () => {
    expect(agentEndpoint('http://127.0.0.1:9101')).toEqual({ host: '127.0.0.1', port: 9101 });
    expect(agentEndpoint('http://127.0.0.1:9101/')).toEqual({ host: '127.0.0.1', port: 9101 });
    expect(agentEndpoint('https://agent.example')).toEqual({ host: 'agent.example', port: 443 });
    expect(agentEndpoint('http://[::1]:80')).toEqual({ host: '::1', port: 80 });
    expect(agentEndpoint('ftp://agent.example')).toBeNull();
    expect(agentEndpoint('not a url')).toBeNull();
  });

  it('compares and prints endpoints; quotes caller values short', () => {
    expect(sameEndpoint({ host: '::1', port: 1 }, { host: '::1', port: 1 })).toBe(true);
    expect(sameEndpoint({ host: '::1', port: 1 }, { host: '::1', port: 2 })).toBe(false);
    expect(endpointText({ host: '::1', port: 4444 })).toBe('[::1]:4444');
    expect(endpointText({ host: '10.0.0.1', port: 4444 })).toBe('10.0.0.1:4444');
    expect(quoted('x'.repeat(500)).length).toBeLessThan(130);
  });
});
