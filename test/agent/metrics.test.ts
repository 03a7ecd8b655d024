import { randomUUID } from 'node:crypto';
import path from 'node:path';
import { afterAll, describe, expect, inject, it } from 'vitest';
import type { HostUsage } from '../../agent/driver.ts';
import { MetricsReporter, usageLines } from '../../agent/metrics.ts';
import { startAgent } from '../../agent/start-agent.ts';
import { eventually, ok } from './agent-client.ts';
import { TEST_TOKEN, tempDir, testLogger } from './agents.ts';
import { testSpec } from './specs.ts';

const influxUrl = inject('influxUrl');

interface Series {
  name: string;
  tags?: Record<string, string>;
  columns: string[];
  values: unknown[][];
}

async function influxQl(database: string, query: string): Promise<Series[]> {
  const url = `${influxUrl}/query?db=${encodeURIComponent(database)}&epoch=ms&q=${encodeURIComponent(query)}`;
  const body = (await (await fetch(url)).json()) as { results: { series?: Series[]; error?: string }[] };
  if (body.results[0]?.error) throw new Error(body.results[0].error);
  return body.results[0]?.series ?? [];
}

const usage: HostUsage = {
  cpuPercent: 37.5,
  memAvailableBytes: 12_345_678_901,
  guests: [
    { id: 'vm-1', cpuPercent: 80, memoryBytes: 1 },
    { id: 'vm 2,odd=name', cpuPercent: 5.25, memoryBytes: 1 },
  ],
};

const roots: string[] = [];
afterAll(async () => {
  const { rm } = await import('node:fs/promises');
  await Promise.all(roots.map((root) => rm(root, { recursive: true, force: true })));
});

describe('metrics in the telegraf schema', () => {
  it('renders line protocol with escaped tags, a float cpu and an integer mem', () => {
    const lines = usageLines(usage, 'h-1', 'host one', new Date(1_700_000_000_000));
    expect(lines).toEqual([
      'cpu,host=host\\ one,host_id=h-1 usage_active=37.5 1700000000000000000',
      'mem,host=host\\ one,host_id=h-1 available=12345678901i 1700000000000000000',
      'vm_cpu,host_id=h-1,vm_id=vm-1 usage_active=80 1700000000000000000',
      'vm_cpu,host_id=h-1,vm_id=vm\\ 2\\,odd\\=name usage_active=5.25 1700000000000000000',
    ]);
  });

  it('creates the database and writes a tick that InfluxQL reads back', async () => {
    const database = `agent_test_${randomUUID().slice(0, 8)}`;
    const hostId = randomUUID();
    const reporter = new MetricsReporter({
      url: influxUrl,
      database,
      intervalSeconds: 10,
      hostId,
      hostName: 'host-m',
      usage: async () => usage,
      log: () => {},
    });
    await reporter.tick();
    await reporter.tick();

    const cpu = await influxQl(database, `SELECT last(usage_active) FROM cpu WHERE host_id = '${hostId}'`);
    expect(cpu[0]!.values[0]![1]).toBe(37.5);
    const mem = await influxQl(
      database,
      `SELECT last(available) FROM mem WHERE host_id = '${hostId}' AND host = 'host-m'`,
    );
    expect(mem[0]!.values[0]![1]).toBe(12_345_678_901);
    const vm = await influxQl(
      database,
      `SELECT last(usage_active) FROM vm_cpu WHERE host_id = '${hostId}' GROUP BY vm_id`,
    );
    expect(Object.fromEntries(vm.map((s) => [s.tags!.vm_id, s.values[0]![1]]))).toEqual({
      'vm-1': 80,
      'vm 2,odd=name': 5.25,
    });
  });

  it('logs a warning and keeps going when InfluxDB is unreachable', async () => {
    const lines: string[] = [];
    const reporter = new MetricsReporter({
      url: 'http://127.0.0.1:9',
      database: 'telegraf',
      intervalSeconds: 1,
      hostId: 'h',
      hostName: 'h',
      usage: async () => usage,
      log: (line) => lines.push(line),
    });
    await expect(reporter.tick()).rejects.toThrow();
    reporter.start();
    await eventually(
      'a warning',
      async () => (lines.some((l) => l.includes('WARNING')) ? true : undefined),
      5_000,
    );
    reporter.stop();
    expect(lines.filter((l) => l.includes('WARNING'))).toHaveLength(1);
  });

  it.each(['sim', 'qemu'] as const)('an agent with the %s driver reports its guests', async (driver) => {
    const root = await tempDir(`vmmig-metrics-${driver}-`);
    roots.push(root);
    const database = `agent_test_${randomUUID().slice(0, 8)}`;
    const agent = await startAgent({
      name: `host-${driver}`,
      host: '127.0.0.1',
      port: 0,
      dir: path.join(root, 'agent'),
      token: TEST_TOKEN,
      driver,
      sharedStorageDir: path.join(root, 'shared'),
      guestImageDir: inject('guestImageDir'),
      migrationAddress: null,
      networks: ['default'],
      liveness: null,
      metrics: { url: influxUrl, database, intervalSeconds: 1 },
      registration: null,
      stopGraceMs: 3000,
      log: testLogger(`host-${driver}`),
    });
    const endpoint = { url: agent.url, token: TEST_TOKEN };
    try {
      const spec = testSpec({ dirtyRateMibs: 10 });
      await ok(endpoint, 'PUT', `/v1/guests/${spec.id}`, spec);
      await ok(endpoint, 'POST', `/v1/guests/${spec.id}/start`);
      const vm = await eventually(
        `vm_cpu of ${spec.id}`,
        async () => {
          const series = await influxQl(
            database,
            `SELECT last(usage_active) FROM vm_cpu WHERE vm_id = '${spec.id}'`,
          );
          const value = series[0]?.values[0]?.[1];
          return typeof value === 'number' && value > 0 ? value : undefined;
        },
        15_000,
      );
      expect(vm).toBeLessThanOrEqual(100);
      const cpu = await influxQl(
        database,
        `SELECT last(usage_active) FROM cpu WHERE host_id = '${agent.hostId}'`,
      );
      expect(cpu[0]!.values[0]![1]).toBeGreaterThan(0);
      const mem = await influxQl(
        database,
        `SELECT last(available) FROM mem WHERE host_id = '${agent.hostId}'`,
      );
      expect(mem[0]!.values[0]![1]).toBeGreaterThan(0);
    } finally {
      await agent.stop();
    }
  });
});
