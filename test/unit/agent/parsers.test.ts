import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { AgentFailure } from '../../../agent/errors.ts';
import { cacheModeFor, supportsDirectIo } from '../../../agent/drivers/disk-images.ts';
import { listeningPorts, mirrorJobs, processListeningPorts } from '../../../agent/drivers/qemu-block.ts';
import { qemuArguments } from '../../../agent/drivers/qemu-command.ts';
import { assertTlsFiles, missingTlsFiles, tlsReady } from '../../../agent/drivers/qemu-tls.ts';
import {
  completionFiguresPending,
  incomingPort,
  normaliseQueryMigrate,
  runStateOf,
} from '../../../agent/drivers/qemu-migration.ts';
import { lastHeartbeatCounter } from '../../../agent/drivers/serial-heartbeat.ts';
import { parseSimUri, simUri } from '../../../agent/drivers/sim-peer.ts';
import { cpuinfoField, parseQemuVersion } from '../../../agent/facts.ts';
import { cpuPercent, parseProcStat } from '../../../agent/proc-stat.ts';
import { agentOptionsFromEnv } from '../../../agent/settings.ts';
import { testQemuLaunch } from '../../helpers/qemu-launch.ts';
import { testSpec } from '../../agent/specs.ts';

describe('what the agent reads from QEMU, /proc and the environment', () => {
  it('finds the last heartbeat on a serial console', () => {
    expect(lastHeartbeatCounter('boot\nVMMIG-GUEST READY\nHB 0\nHB 1\r\nHB 12\nHB 1')).toBe(1);
    expect(lastHeartbeatCounter('HB 7\nsomething else\n')).toBe(7);
    expect(lastHeartbeatCounter('no beat HB 3 here')).toBeNull();
  });

  it('normalises query-migrate', () => {
    const status = normaliseQueryMigrate(
      {
        status: 'completed',
        ram: {
          transferred: 10,
          remaining: 0,
          total: 100,
          'dirty-pages-rate': 5,
          'page-size': 4096,
          'dirty-sync-count': 3,
          mbps: 9.5,
        },
        downtime: 7,
        'total-time': 428,
      },
      'm-1',
    );
    expect(status).toMatchObject({
      migrationId: 'm-1',
      status: 'completed',
      transferredBytes: 10,
      totalBytes: 100,
      downtimeMs: 7,
    });
    expect(status.expectedDowntimeMs).toBeNull();
    expect(normaliseQueryMigrate({}, null).status).toBe('none');
    expect(normaliseQueryMigrate({ status: 'pre-switchover' }, null).status).toBe('active');
    expect(normaliseQueryMigrate({ status: 'postcopy-paused' }, null).status).toBe('postcopy-active');
    expect(incomingPort({ 'socket-address': [{ type: 'inet', host: '127.0.0.1', port: '41245' }] })).toBe(
      41245,
    );
    expect(incomingPort({})).toBeNull();
  });

  it("asks again for a completed migration's figures when QEMU has not filled them in yet", () => {
    // QEMU 7.2 answered this way in 2 of 8 benchmark rounds, right after its MIGRATION completed event.
    expect(completionFiguresPending({ status: 'completed', 'total-time': 0, downtime: 0 })).toBe(true);
    expect(completionFiguresPending({ status: 'completed' })).toBe(true);
    expect(completionFiguresPending({ status: 'completed', 'total-time': 7291, downtime: 0 })).toBe(false);
    expect(completionFiguresPending({ status: 'completed', 'total-time': 7291, downtime: 12 })).toBe(false);
    expect(completionFiguresPending({ status: 'active', 'total-time': 0 })).toBe(false);
    expect(completionFiguresPending({ status: 'failed' })).toBe(false);
  });

  it('maps desired state and QEMU run state to the contract', () => {
    expect(runStateOf('stopped', false, false, null)).toBe('defined');
    expect(runStateOf('stopped', true, false, null)).toBe('stopped');
    expect(runStateOf('running', true, false, null)).toBe('crashed');
    expect(runStateOf('running', true, true, 'running')).toBe('running');
    expect(runStateOf('paused', true, true, 'postmigrate')).toBe('paused');
    expect(runStateOf('incoming', true, true, 'inmigrate')).toBe('incoming');
    expect(runStateOf('running', true, true, 'guest-panicked')).toBe('crashed');
  });

  it('builds the same device model on both ends of a migration', () => {
    const spec = testSpec({ id: 'g-1', memoryMb: 256, vcpus: 2, dirtyRateMibs: 2.5, fillMb: 16 });
    const launch = testQemuLaunch(spec, {
      disks: [{ id: 'root', path: '/shared/g-1/root.qcow2', cache: 'none' }],
    });
    const source = qemuArguments(launch);
    const destination = qemuArguments({ ...launch, incoming: true });
    expect(destination.slice(0, source.length)).toEqual(source);
    expect(destination.slice(source.length)).toEqual(['-incoming', 'defer']);
    const flag = (name: string) => source[source.indexOf(name) + 1];
    expect(flag('-append')).toBe('console=ttyS0 quiet dirty_mibs=2.5 fill_mb=16');
    expect(flag('-m')).toBe('256');
    expect(flag('-smp')).toBe('2');
    expect(source).toContain('file=/shared/g-1/root.qcow2,format=qcow2,if=none,id=drive-root,cache=none');
    expect(source.some((a) => a.includes(`mac=${spec.networks[0]!.mac}`))).toBe(true);
  });

  it('falls back from O_DIRECT cache modes where the filesystem has no O_DIRECT', async () => {
    expect(cacheModeFor('none', false)).toEqual({ cache: 'writethrough', fellBack: true });
    expect(cacheModeFor('directsync', false)).toEqual({ cache: 'writethrough', fellBack: true });
    expect(cacheModeFor('none', true)).toEqual({ cache: 'none', fellBack: false });
    expect(cacheModeFor('writeback', false)).toEqual({ cache: 'writeback', fellBack: false });
    expect(typeof (await supportsDirectIo(os.tmpdir()))).toBe('boolean');
  });

  it('parses /proc/<pid>/stat and turns CPU time into percent', () => {
    const fields = Array.from({ length: 50 }, () => '0');
    fields[13] = '150'; // utime (field 14)
    fields[14] = '50'; // stime (field 15)
    fields[21] = '1000'; // starttime (field 22), ticks since boot
    fields[23] = '2560'; // rss pages (field 24)
    const stat = `1234 (qemu-system-x86 (x)) S ${fields.slice(3).join(' ')}`;
    const parsed = parseProcStat(stat, 30);
    expect(parsed).toEqual({ state: 'S', cpuSeconds: 2, ageSeconds: 20, rssBytes: 2560 * 4096 });
    const now = { pid: 1, ...parsed! };
    expect(cpuPercent(undefined, now, 0, 1)).toBe(10);
    expect(cpuPercent({ ...now, cpuSeconds: 1.5 }, now, 1, 1)).toBe(50);
    expect(cpuPercent({ ...now, cpuSeconds: 1.5 }, now, 1, 2)).toBe(25);
  });

  it('reads host facts', () => {
    expect(parseQemuVersion('QEMU emulator version 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3)\n')).toBe(
      '7.2.22',
    );
    const cpuinfo = 'processor\t: 0\nmodel name\t: AMD EPYC 7B13\nmicrocode\t: 0xffffffff\n';
    expect(cpuinfoField(cpuinfo, 'model name')).toBe('AMD EPYC 7B13');
    expect(cpuinfoField(cpuinfo, 'microcode')).toBe('0xffffffff');
    expect(cpuinfoField(cpuinfo, 'flags')).toBeNull();
  });

  it('round-trips a sim migration uri', () => {
    const uri = simUri('http://127.0.0.1:9102', 'm 1/x', 'g-1');
    // No secret in it: it may appear in events and logs.
    expect(uri).toBe('sim+http://127.0.0.1:9102/v1/internal/sim/migrations/m%201%2Fx?guest=g-1');
    expect(parseSimUri(uri)).toEqual({
      eventsUrl: 'http://127.0.0.1:9102/v1/internal/sim/migrations/m%201%2Fx/events',
      agentUrl: 'http://127.0.0.1:9102',
      migrationId: 'm 1/x',
      guestId: 'g-1',
    });
    expect(parseSimUri('tcp:127.0.0.1:4444')).toBeNull();
  });

  it('reads the agent environment, naming what is missing or wrong', () => {
    const env = {
      AGENT_NAME: 'a',
      AGENT_PORT: '9101',
      AGENT_DIR: '/tmp/a',
      SHARED_STORAGE_DIR: '/tmp/shared',
      HOME: '/home/x',
    };
    const options = agentOptionsFromEnv(env);
    expect(options).toMatchObject({
      name: 'a',
      host: '127.0.0.1',
      port: 9101,
      driver: 'qemu',
      guestImageDir: '/home/x/.cache/vmmig/guest-image',
      networks: ['default'],
      liveness: { endpoints: ['http://127.0.0.1:2379'], prefix: 'vmmig', ttlSeconds: 10 },
      metrics: { url: 'http://127.0.0.1:8086', database: 'telegraf', intervalSeconds: 10 },
      registration: null,
    });
    const sim = agentOptionsFromEnv({
      ...env,
      AGENT_DRIVER: 'sim',
      AGENT_CPUS: '64',
      AGENT_CPU_MODEL: 'Model X',
      AGENT_NETWORKS: 'default, storage',
      API_URL: 'http://api',
      API_TOKEN: 'k',
      AGENT_ENROLMENT_TOKEN: 'vme_k',
      AGENT_PEER_TOKEN: 'p',
      VMMIG_CACHE: '/c',
    });
    expect(sim).toMatchObject({
      driver: 'sim',
      cpus: 64,
      sim: { cpuModel: 'Model X' },
      networks: ['default', 'storage'],
    });
    // An agent takes no API token from its environment: it enrols, then registers with its own credential.
    expect(sim.registration).toEqual({ apiUrl: 'http://api', enrolmentToken: 'vme_k', reportIntervalS: 10 });
    expect(sim.peerToken).toBe('p');
    expect(sim.token).toBeUndefined();
    expect(sim.guestImageDir).toBe('/c/guest-image');
    expect(sim.tlsDir).toBe('/c/tls');
    expect(agentOptionsFromEnv({ ...env, AGENT_TLS_DIR: '/etc/vmmig/tls' }).tlsDir).toBe('/etc/vmmig/tls');
    expect(() => agentOptionsFromEnv({ ...env, AGENT_PORT: 'x' })).toThrow(/AGENT_PORT/);
    expect(() => agentOptionsFromEnv({ ...env, AGENT_DRIVER: 'xen' })).toThrow(/AGENT_DRIVER/);
  });

  it('builds the incoming TLS server credentials and the disk-test switch into the command line', () => {
    const spec = testSpec({ id: 'g-1', diskTest: true });
    const launch = testQemuLaunch(spec, { incoming: true, tlsServerDir: '/tls,dir' });
    const args = qemuArguments(launch);
    expect(args.slice(-4)).toEqual([
      '-incoming',
      'defer',
      '-object',
      'tls-creds-x509,id=vmmig-tls-server,dir=/tls,,dir,endpoint=server,verify-peer=on',
    ]);
    expect(args[args.indexOf('-append') + 1]).toMatch(/ disk_test=1$/);
    expect(qemuArguments({ ...launch, incoming: false })).not.toContain('-object');
  });

  it('names the TLS files a host lacks', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'vmmig-tls-'));
    try {
      expect(await missingTlsFiles(dir, 'client')).toEqual([
        'ca-cert.pem',
        'client-cert.pem',
        'client-key.pem',
      ]);
      for (const file of ['ca-cert.pem', 'server-cert.pem', 'server-key.pem'])
        await writeFile(path.join(dir, file), 'x');
      expect(await missingTlsFiles(dir, 'server')).toEqual([]);
      await assertTlsFiles(dir, 'server');
      expect(await tlsReady(dir)).toBe(false);
      const failure = await assertTlsFiles(dir, 'client').catch((error: unknown) => error);
      expect(failure).toBeInstanceOf(AgentFailure);
      expect((failure as AgentFailure).status).toBe(409);
      expect((failure as AgentFailure).code).toBe('tls_unavailable');
      expect((failure as AgentFailure).message).toContain(path.join(dir, 'client-cert.pem'));
      for (const file of ['client-cert.pem', 'client-key.pem']) await writeFile(path.join(dir, file), 'x');
      expect(await tlsReady(dir)).toBe(true);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('reads mirror jobs and listening ports', async () => {
    const job = (index: number, extra: object) => ({
      device: `vmmig-mirror-${index}`,
      type: 'mirror',
      len: 100,
      offset: 40,
      ready: false,
      status: 'running',
      ...extra,
    });
    const running = mirrorJobs(
      ['a', 'b'],
      [job(0, {}), job(1, { ready: true, offset: 100, status: 'ready' })],
    );
    expect(running).toMatchObject({ transferredBytes: 140, totalBytes: 200, ready: false, failure: null });
    expect(mirrorJobs(['a'], [job(0, { ready: true, status: 'ready' })]).ready).toBe(true);
    expect(mirrorJobs(['a', 'b'], [job(0, {})]).failure).toEqual({
      diskId: 'b',
      error: 'the mirror job is gone',
    });
    expect(mirrorJobs(['a'], [job(0, { status: 'concluded', error: 'Input/output error' })]).failure).toEqual(
      {
        diskId: 'a',
        error: 'Input/output error',
      },
    );

    const table = [
      '  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode',
      '   0: 0100007F:9C41 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4242 1 0',
      '   1: 0100007F:9C42 0100007F:1F90 01 00000000:00000000 00:00000000 00000000     0        0 4243 1 0',
    ].join('\n');
    expect([...listeningPorts(table)]).toEqual([['4242', 0x9c41]]);
    expect(await processListeningPorts(2 ** 30)).toEqual(new Set());
  });
});
