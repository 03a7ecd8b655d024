import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { listProcesses } from '../../scripts/services/proc-table.ts';
import { startStackServers } from '../../scripts/services/stack-servers.ts';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'vmmig-stack-servers-'));
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

const runningUnder = (dir: string) => listProcesses().filter((p) => p.cmdline.includes(dir));

describe('startStackServers', () => {
  it('starts only the named servers, data in <root>/<server>, logs in <root>/logs, and stops them', async () => {
    const dir = path.join(root, 'ok');
    const servers = await startStackServers({ root: dir, etcd: {}, influx: {} });
    expect(Object.keys(servers).sort()).toEqual(['etcd', 'influx', 'stop']);
    expect(fs.existsSync(path.join(dir, 'etcd', 'member'))).toBe(true);
    expect(fs.existsSync(path.join(dir, 'influx', 'influxdb.conf'))).toBe(true);
    expect(fs.readdirSync(path.join(dir, 'logs')).sort()).toEqual(['etcd.log', 'influxd.log']);
    expect(runningUnder(dir)).toHaveLength(2);
    await servers.stop();
    expect(runningUnder(dir)).toEqual([]);
  });

  it('stops the servers that came up when another fails, and rethrows its error', async () => {
    const dir = path.join(root, 'failing');
    await expect(
      startStackServers({
        root: dir,
        etcd: {},
        influx: { command: path.join(dir, 'no-such-influxd'), startTimeoutMs: 5_000 },
      }),
    ).rejects.toThrow(/influxd/);
    expect(fs.existsSync(path.join(dir, 'etcd', 'member'))).toBe(true);
    expect(runningUnder(dir)).toEqual([]);
  });
});
