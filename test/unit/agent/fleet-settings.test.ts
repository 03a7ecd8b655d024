import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { EnvReader } from '../../../domain/config.ts';
import { readSimFleetOptions } from '../../../agent/fleet-settings.ts';

const BASE = { SIM_FLEET_HOSTS: '20', SIM_FLEET_DIR: '/tmp/fleet' };

function read(env: Record<string, string | undefined>) {
  const r = new EnvReader(env);
  const options = readSimFleetOptions(r);
  return { options, problems: r.problems, files: r.files };
}

describe('readSimFleetOptions', () => {
  it('takes the fleet from SIM_FLEET_* and defaults the rest as an agent does', () => {
    const { options, problems } = read(BASE);
    expect(problems).toEqual([]);
    expect(options).toMatchObject({
      count: 20,
      dir: '/tmp/fleet',
      prefix: 'sim-',
      seed: 1,
      host: '127.0.0.1',
      sharedStorageDir: path.join('/tmp/fleet', 'shared'),
      networks: ['default'],
      liveness: { endpoints: ['http://127.0.0.1:2379'], prefix: 'vmmig', ttlSeconds: 10 },
      metrics: { url: 'http://127.0.0.1:8086', database: 'telegraf', intervalSeconds: 10 },
      registration: null,
      startConcurrency: 16,
      credentialKey: null,
      guestsFile: null,
      quiet: false,
    });
  });

  it('reads the agent variables a fleet shares', () => {
    const { options, problems, files } = read({
      ...BASE,
      SIM_FLEET_PREFIX: 'rack1-',
      SIM_FLEET_SEED: '42',
      SIM_FLEET_CREDENTIAL_KEY: 'key',
      SIM_FLEET_API_TOKEN: 'admin',
      SIM_FLEET_GUESTS_FILE: '/tmp/guests.json',
      SIM_FLEET_REGISTER_REFRESH_S: '30',
      SIM_FLEET_REGISTER_SPREAD_S: '5',
      SIM_FLEET_QUIET: 'true',
      API_URL: 'http://127.0.0.1:8080',
      AGENT_PEER_TOKEN: 'peer',
      ETCD_ENDPOINTS: 'http://10.0.0.1:2379',
      ETCD_PREFIX: 'bench',
      HEALTH_TTL_S: '30',
      INFLUX_URL: 'http://10.0.0.2:8086',
      METRICS_INTERVAL_S: '15',
      SHARED_STORAGE_DIR: '/srv/shared',
      AGENT_SIM_LINK_MBPS: '25000',
      AGENT_REPORT_INTERVAL_S: '30',
    });
    expect(problems).toEqual([]);
    expect(options).toMatchObject({
      prefix: 'rack1-',
      seed: 42,
      credentialKey: 'key',
      guestsFile: '/tmp/guests.json',
      quiet: true,
      peerToken: 'peer',
      sharedStorageDir: '/srv/shared',
      liveness: { endpoints: ['http://10.0.0.1:2379'], prefix: 'bench', ttlSeconds: 30 },
      metrics: { url: 'http://10.0.0.2:8086', intervalSeconds: 15 },
      registration: {
        apiUrl: 'http://127.0.0.1:8080',
        apiToken: 'admin',
        refreshMs: 30_000,
        spreadMs: 5_000,
      },
      sim: { linkBytesPerSec: 25_000 * 125_000 },
    });
    expect(files.map((f) => f.variable)).toContain('SIM_FLEET_GUESTS_FILE');
  });

  it('spreads the registrations over the refresh period by default', () => {
    const { options } = read({ ...BASE, API_URL: 'http://api:8080', SIM_FLEET_REGISTER_REFRESH_S: '45' });
    expect(options.registration).toMatchObject({ refreshMs: 45_000, spreadMs: 45_000 });
  });

  it('names each bad variable', () => {
    const { problems } = read({
      SIM_FLEET_HOSTS: 'many',
      SIM_FLEET_PREFIX: 'bad prefix',
      SIM_FLEET_SEED: '-1',
      ETCD_ENDPOINTS: 'etcd',
      HEALTH_TTL_S: '0',
      API_URL: 'ftp://x',
    });
    const named = (name: string) => problems.some((p) => p.startsWith(name));
    for (const name of ['SIM_FLEET_HOSTS', 'SIM_FLEET_DIR', 'SIM_FLEET_PREFIX', 'SIM_FLEET_SEED']) {
      expect(named(name), name).toBe(true);
    }
    for (const name of ['ETCD_ENDPOINTS', 'HEALTH_TTL_S', 'API_URL']) expect(named(name), name).toBe(true);
  });

  it('requires SIM_FLEET_HOSTS and SIM_FLEET_DIR', () => {
    const { problems } = read({});
    expect(problems).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^SIM_FLEET_HOSTS is required/),
        expect.stringMatching(/^SIM_FLEET_DIR is required/),
      ]),
    );
  });

  it("refuses one agent's per-host variables, saying what the fleet takes instead", () => {
    const { problems } = read({
      ...BASE,
      AGENT_NAME: 'h1',
      AGENT_DIR: '/x',
      AGENT_URL: 'http://x:1',
      AGENT_ENROLMENT_TOKEN: 'vme_x',
      AGENT_CPUS: '4',
      AGENT_MEMORY_MB: '4096',
      AGENT_DRIVER: 'qemu',
      AGENT_PORT: '9100',
    });
    for (const name of [
      'AGENT_NAME',
      'AGENT_DIR',
      'AGENT_URL',
      'AGENT_ENROLMENT_TOKEN',
      'AGENT_CPUS',
      'AGENT_MEMORY_MB',
      'AGENT_DRIVER',
      'AGENT_PORT',
    ]) {
      expect(
        problems.filter((p) => p.startsWith(name)),
        name,
      ).toHaveLength(1);
    }
    expect(problems.find((p) => p.startsWith('AGENT_NAME'))).toContain('SIM_FLEET_PREFIX');
  });
});
