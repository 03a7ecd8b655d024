import { describe, expect, it } from 'vitest';
import { isWildcardAddress } from '../../agent/drivers/qemu-block.ts';
import { qemuImgConvertArgs, qemuNbdArgs } from '../../agent/drivers/qemu-disk-copy.ts';
import {
  authzObject,
  authzObjectArgs,
  certificateDn,
  dnTemplateProblem,
  escapeDnValue,
  hostTlsDir,
  incomingTlsParameters,
  outgoingTlsParameters,
  tlsClientObjectArgs,
  tlsCredsObject,
  tlsServerObject,
} from '../../agent/drivers/qemu-tls.ts';
import { agentOptionsFromEnv, tlsCaKeyFromEnv, tlsDefaults } from '../../agent/settings.ts';
import { certtoolTemplate, isCertificateName } from '../../agent/tls-issue.ts';

describe('migration TLS: certificate names and DNs', () => {
  it('puts each host under hosts/<name>/ of the TLS dir', () => {
    expect(hostTlsDir('/etc/vmmig/tls', 'host-1')).toBe('/etc/vmmig/tls/hosts/host-1');
  });

  it('builds the DN GnuTLS prints for a host, from the default or a template', () => {
    expect(certificateDn('host-1')).toBe('CN=host-1');
    expect(certificateDn('host-1', 'CN={host},OU=hypervisors,O=Example Corp')).toBe(
      'CN=host-1,OU=hypervisors,O=Example Corp',
    );
  });

  it('escapes what RFC 4514 escapes, so a name cannot add attributes to the DN', () => {
    expect(escapeDnValue('a,O=evil')).toBe('a\\,O=evil');
    expect(escapeDnValue('a+b;c<d>e"f\\g')).toBe('a\\+b\\;c\\<d\\>e\\"f\\\\g');
    expect(escapeDnValue('#lead')).toBe('\\#lead');
    expect(escapeDnValue(' both ')).toBe('\\ both\\ ');
    expect(certificateDn('x,CN=host-2')).toBe('CN=x\\,CN=host-2');
  });

  it('refuses DN templates without {host}, with quotes, or not shaped like a DN', () => {
    expect(dnTemplateProblem('CN={host}')).toBeNull();
    expect(dnTemplateProblem('CN=fixed')).toMatch(/no \{host\}/);
    expect(dnTemplateProblem('CN="{host}"')).toMatch(/quote/);
    expect(dnTemplateProblem('{host}')).toMatch(/not a DN/);
    expect(() => certificateDn('h', 'O=x')).toThrow(/no \{host\}/);
  });

  it('knows which names a certificate can carry as they are', () => {
    for (const name of ['host-1', 'q1', 'a', 'node.example.com', 'h_1'])
      expect(isCertificateName(name), name).toBe(true);
    for (const name of ['', '-x', 'x-', 'a b', 'a,b', 'a"b', 'a/b', 'x'.repeat(254)])
      expect(isCertificateName(name), name).toBe(false);
  });

  it('writes certtool templates with the DN, the name and the addresses as subjectAltNames', () => {
    const server = certtoolTemplate({
      role: 'server',
      dn: 'CN=host-1',
      hostName: 'host-1',
      addresses: ['10.0.0.5', '::1', 'host-1', 'mig.example', '0.0.0.0', '10.0.0.5'],
      days: 30,
    });
    expect(server.split('\n')).toEqual([
      'dn = "CN=host-1"',
      'dns_name = "host-1"',
      'ip_address = "10.0.0.5"',
      'ip_address = "::1"',
      'dns_name = "mig.example"',
      'tls_www_server',
      'signing_key',
      'encryption_key',
      'expiration_days = 30',
      '',
    ]);
    const client = certtoolTemplate({ role: 'client', dn: 'CN=h', hostName: 'h', addresses: [], days: 1 });
    expect(client).toContain('tls_www_client');
    expect(() =>
      certtoolTemplate({ role: 'client', dn: 'CN=h"\nca', hostName: 'h', addresses: [], days: 1 }),
    ).toThrow(/quote/);
    expect(() =>
      certtoolTemplate({ role: 'client', dn: 'CN=h', hostName: 'a b', addresses: [], days: 1 }),
    ).toThrow(/certificate name/);
  });
});

describe('migration TLS: QEMU objects and parameters', () => {
  it('builds credentials and authz objects, doubling commas inside values', () => {
    expect(tlsServerObject('/tls,dir/hosts/h')).toBe(
      'tls-creds-x509,id=vmmig-tls-server,dir=/tls,,dir/hosts/h,endpoint=server,verify-peer=on',
    );
    expect(tlsCredsObject('c', '/d', 'client')).toBe(
      'tls-creds-x509,id=c,dir=/d,endpoint=client,verify-peer=on',
    );
    expect(authzObject('CN=host-1,O=Example')).toBe(
      'authz-simple,id=vmmig-tls-peer,identity=CN=host-1,,O=Example',
    );
    expect(authzObjectArgs('CN=host-1')).toEqual({
      'qom-type': 'authz-simple',
      id: 'vmmig-tls-peer',
      identity: 'CN=host-1',
    });
    expect(tlsClientObjectArgs('/d')).toEqual({
      'qom-type': 'tls-creds-x509',
      id: 'vmmig-tls-client',
      dir: '/d',
      endpoint: 'client',
      'verify-peer': true,
    });
  });

  it('sets tls-creds and tls-authz on a destination, tls-creds and tls-hostname on a source', () => {
    expect(incomingTlsParameters(true)).toEqual({
      'tls-creds': 'vmmig-tls-server',
      'tls-authz': 'vmmig-tls-peer',
    });
    // Never tls-authz '': QEMU 7.2 would look up an authz object of that id and refuse everyone.
    expect(incomingTlsParameters(false)).toEqual({ 'tls-creds': 'vmmig-tls-server' });
    expect(outgoingTlsParameters('host-2')).toEqual({
      'tls-creds': 'vmmig-tls-client',
      'tls-hostname': 'host-2',
    });
    expect(outgoingTlsParameters(null)).toEqual({ 'tls-creds': '', 'tls-hostname': '' });
  });

  it('serves a cold copy with qemu-nbd over TLS admitting only the importing host', () => {
    const base = { listenAddress: '10.0.0.5', diskId: 'data', image: '/g/data.qcow2' };
    expect(qemuNbdArgs({ ...base, tls: null })).toEqual([
      '--read-only',
      '--persistent',
      '--shared=2',
      '--format=qcow2',
      '--bind',
      '10.0.0.5',
      '--port',
      '0',
      '--export-name=data',
      '/g/data.qcow2',
    ]);
    const tls = qemuNbdArgs({ ...base, tls: { dir: '/t/hosts/h1', peerDn: 'CN=h2' } });
    expect(tls.slice(9)).toEqual([
      '--object',
      'tls-creds-x509,id=vmmig-tls-server,dir=/t/hosts/h1,endpoint=server,verify-peer=on',
      '--tls-creds=vmmig-tls-server',
      '--object',
      'authz-simple,id=vmmig-tls-peer,identity=CN=h2',
      '--tls-authz=vmmig-tls-peer',
      '/g/data.qcow2',
    ]);
    expect(qemuNbdArgs({ ...base, tls: { dir: '/t', peerDn: null } })).not.toContain(
      '--tls-authz=vmmig-tls-peer',
    );
  });

  it('reads it with qemu-img, over TLS through --image-opts naming the source', () => {
    const nbdUri = 'nbd://10.0.0.5:40000/data';
    expect(qemuImgConvertArgs({ nbdUri, partial: '/g/d.importing', tls: null })).toEqual([
      'convert',
      '-p',
      '-f',
      'raw',
      '-O',
      'qcow2',
      nbdUri,
      '/g/d.importing',
    ]);
    expect(
      qemuImgConvertArgs({ nbdUri, partial: '/g/d.importing', tls: { dir: '/t/hosts/h2', hostname: 'h1' } }),
    ).toEqual([
      'convert',
      '-p',
      '--object',
      'tls-creds-x509,id=vmmig-tls-client,dir=/t/hosts/h2,endpoint=client,verify-peer=on',
      '--image-opts',
      'driver=raw,file.driver=nbd,file.server.type=inet,file.server.host=10.0.0.5,file.server.port=40000,' +
        'file.export=data,file.tls-creds=vmmig-tls-client,file.tls-hostname=h1',
      '-O',
      'qcow2',
      '/g/d.importing',
    ]);
    expect(
      qemuImgConvertArgs({ nbdUri: 'json:{}', partial: '/p', tls: { dir: '/t', hostname: 'h' } }),
    ).toBeNull();
  });

  it('refuses to bind listeners to every interface', () => {
    for (const address of ['0.0.0.0', '::', '[::]', '0:0:0:0:0:0:0:0', '', '*'])
      expect(isWildcardAddress(address), address).toBe(true);
    for (const address of ['127.0.0.1', '10.0.0.5', '::1', '[fd00::1]', 'host-1'])
      expect(isWildcardAddress(address), address).toBe(false);
  });
});

describe('migration TLS: agent settings', () => {
  const env = {
    AGENT_NAME: 'a',
    AGENT_PORT: '9101',
    AGENT_DIR: '/var/lib/vmmig',
    AGENT_TOKEN: 't',
    SHARED_STORAGE_DIR: '/shared',
    HOME: '/home/x',
  };

  it('issues from the dev CA key only when the TLS dir is the dev default, or a key is named', () => {
    expect(tlsCaKeyFromEnv(env)).toBe('/home/x/.cache/vmmig/tls/ca-key.pem');
    expect(tlsCaKeyFromEnv({ ...env, AGENT_TLS_DIR: '/etc/vmmig/tls' })).toBeNull();
    expect(
      tlsCaKeyFromEnv({ ...env, AGENT_TLS_DIR: '/etc/vmmig/tls', AGENT_TLS_CA_KEY: '/ca/key.pem' }),
    ).toBe('/ca/key.pem');
    expect(tlsDefaults({}, env)).toEqual({
      tlsDir: '/home/x/.cache/vmmig/tls',
      tlsCaKey: '/home/x/.cache/vmmig/tls/ca-key.pem',
      tlsDnTemplate: 'CN={host}',
    });
    expect(tlsDefaults({ tlsDir: '/t' }, env)).toMatchObject({ tlsDir: '/t', tlsCaKey: null });
    expect(tlsDefaults({ tlsDir: '/t', tlsCaKey: '/k' }, env)).toMatchObject({ tlsCaKey: '/k' });
  });

  it('takes a DN template from AGENT_TLS_DN and refuses a bad one', () => {
    expect(agentOptionsFromEnv({ ...env, AGENT_TLS_DN: 'CN={host},O=Example' }).tlsDnTemplate).toBe(
      'CN={host},O=Example',
    );
    expect(agentOptionsFromEnv(env).tlsDnTemplate).toBeUndefined();
    expect(() => agentOptionsFromEnv({ ...env, AGENT_TLS_DN: 'CN=fixed' })).toThrow(/AGENT_TLS_DN/);
  });
});
