import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import type os from 'node:os';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bandwidthParameters, migrationParameterArgs } from '../../agent/drivers/qemu-migration.ts';
import {
  interfaceOfAddress,
  parseLinkSpeedMbps,
  readLinkSpeedMbps,
  readPlatformFacts,
} from '../../agent/facts.ts';
import { agentOptionsFromEnv, migrationLinkMbpsSetting } from '../../agent/settings.ts';

function nic(address: string, internal = false): os.NetworkInterfaceInfo {
  const v6 = address.includes(':');
  return {
    address,
    netmask: v6 ? 'ffff:ffff:ffff:ffff::' : '255.255.255.0',
    family: v6 ? 'IPv6' : 'IPv4',
    mac: '52:54:00:12:34:56',
    internal,
    cidr: null,
    ...(v6 ? { scopeid: 0 } : {}),
  } as os.NetworkInterfaceInfo;
}

const interfaces: NodeJS.Dict<os.NetworkInterfaceInfo[]> = {
  lo: [nic('127.0.0.1', true), nic('::1', true)],
  eth0: [nic('192.0.2.10'), nic('2001:db8::10')],
  mig0: [nic('198.51.100.7')],
  veth1: [nic('203.0.113.5')],
  down0: [nic('203.0.113.9')],
};

describe('migration link speed facts', () => {
  let sys: string;

  beforeAll(async () => {
    sys = await mkdtemp(path.join(tmpdir(), 'fake-sys-class-net-'));
    const speeds: Record<string, string> = { lo: '', eth0: '1000\n', mig0: '25000\n', veth1: '-1\n' };
    for (const [iface, speed] of Object.entries(speeds)) {
      await mkdir(path.join(sys, iface));
      await writeFile(path.join(sys, iface, 'speed'), speed);
    }
    // down0: the kernel refuses to read the speed of a down interface (EINVAL); here it has no file.
    await mkdir(path.join(sys, 'down0'));
  });
  afterAll(async () => rm(sys, { recursive: true, force: true }));

  it('parses what /sys/class/net/<iface>/speed holds', () => {
    expect(parseLinkSpeedMbps('10000\n')).toBe(10_000);
    expect(parseLinkSpeedMbps(' 100 ')).toBe(100);
    for (const unknown of ['-1\n', '0', '', 'unknown', '4294967295', '1.5', '1e4']) {
      expect(parseLinkSpeedMbps(unknown), unknown).toBeUndefined();
    }
  });

  it('finds the interface holding an address; loopback and unknown addresses have none', () => {
    expect(interfaceOfAddress('198.51.100.7', interfaces)).toBe('mig0');
    expect(interfaceOfAddress('2001:DB8::10', interfaces)).toBe('eth0');
    expect(interfaceOfAddress('[2001:db8::10]', interfaces)).toBe('eth0');
    expect(interfaceOfAddress('2001:db8::10%eth0', interfaces)).toBe('eth0');
    expect(interfaceOfAddress('127.0.0.1', interfaces)).toBeNull();
    expect(interfaceOfAddress('::1', interfaces)).toBeNull();
    expect(interfaceOfAddress('0.0.0.0', interfaces)).toBeNull();
    expect(interfaceOfAddress('migration.example', interfaces)).toBeNull();
  });

  it('reads the speed of the interface carrying the migration address', async () => {
    const read = (address: string) => readLinkSpeedMbps(address, { sysClassNet: sys, interfaces });
    expect(await read('198.51.100.7')).toBe(25_000);
    expect(await read('192.0.2.10')).toBe(1000);
    expect(await read('127.0.0.1')).toBeUndefined();
    expect(await read('203.0.113.5')).toBeUndefined();
    expect(await read('203.0.113.9')).toBeUndefined();
    expect(await read('192.0.2.99')).toBeUndefined();
  });

  it('puts it in the platform facts; a configured speed wins, and no address reads nothing', async () => {
    const base = { cpus: 2, memoryMb: 1024, qemuBinary: '/nonexistent/qemu', sysClassNet: sys, interfaces };
    expect((await readPlatformFacts({ ...base, migrationAddress: '198.51.100.7' })).migrationLinkMbps).toBe(
      25_000,
    );
    expect(
      (await readPlatformFacts({ ...base, migrationAddress: '198.51.100.7', migrationLinkMbps: 40_000 }))
        .migrationLinkMbps,
    ).toBe(40_000);
    const loopback = await readPlatformFacts({ ...base, migrationAddress: '127.0.0.1' });
    expect('migrationLinkMbps' in loopback).toBe(false);
    expect('migrationLinkMbps' in (await readPlatformFacts(base))).toBe(false);
  });

  it('takes AGENT_MIGRATION_LINK_MBPS, and refuses a bad one naming it', () => {
    const env = {
      AGENT_NAME: 'h',
      AGENT_PORT: '0',
      AGENT_DIR: '/tmp/agent',
      SHARED_STORAGE_DIR: '/tmp/shared',
      AGENT_DRIVER: 'qemu',
    };
    expect(agentOptionsFromEnv(env).migrationLinkMbps).toBeUndefined();
    expect(agentOptionsFromEnv({ ...env, AGENT_MIGRATION_LINK_MBPS: '25000' }).migrationLinkMbps).toBe(
      25_000,
    );
    for (const bad of ['0', '-5', 'fast', '2.5', '25000000000']) {
      expect(() => migrationLinkMbpsSetting({ AGENT_MIGRATION_LINK_MBPS: bad }), bad).toThrow(
        /AGENT_MIGRATION_LINK_MBPS/,
      );
    }
    // The sim's modelled link: AGENT_SIM_LINK_MBPS, else the same variable.
    const sim = { ...env, AGENT_DRIVER: 'sim' };
    expect(agentOptionsFromEnv({ ...sim, AGENT_MIGRATION_LINK_MBPS: '800' }).sim?.linkBytesPerSec).toBe(
      100_000_000,
    );
    expect(
      agentOptionsFromEnv({ ...sim, AGENT_MIGRATION_LINK_MBPS: '800', AGENT_SIM_LINK_MBPS: '8000' }).sim
        ?.linkBytesPerSec,
    ).toBe(1_000_000_000);
  });
});

describe('the bandwidth cap sent to QEMU', () => {
  it('caps post-copy with pre-copy, at the start and on every change', () => {
    expect(bandwidthParameters(30 * 2 ** 20)).toEqual({
      'max-bandwidth': 30 * 2 ** 20,
      'max-postcopy-bandwidth': 30 * 2 ** 20,
    });
    expect(bandwidthParameters(0)).toEqual({ 'max-bandwidth': 0, 'max-postcopy-bandwidth': 0 });
    expect(migrationParameterArgs({ maxBandwidthBytes: 1_000_000, downtimeLimitMs: 300 })).toEqual({
      'downtime-limit': 300,
      'max-bandwidth': 1_000_000,
      'max-postcopy-bandwidth': 1_000_000,
    });
    expect(
      migrationParameterArgs({ cpuThrottleIncrement: 5, cpuThrottleInitial: 30, maxCpuThrottle: 80 }),
    ).toEqual({ 'cpu-throttle-increment': 5, 'cpu-throttle-initial': 30, 'max-cpu-throttle': 80 });
    expect(migrationParameterArgs({})).toEqual({});
  });
});
