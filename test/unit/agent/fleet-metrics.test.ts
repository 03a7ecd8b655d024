import { afterEach, describe, expect, it, vi } from 'vitest';
import type { HostUsage } from '../../../agent/driver.ts';
import { FleetMetrics, fleetUsageLines } from '../../../agent/fleet-metrics.ts';

const AT = new Date(1_700_000_000_000);
const NS = '1700000000000000000';

function usage(cpuPercent: number, guests: HostUsage['guests'] = []): HostUsage {
  return { cpuPercent, memAvailableBytes: 1024, guests };
}

describe('fleetUsageLines', () => {
  it('tags every point with its own host, all at the same time', () => {
    const lines = fleetUsageLines(
      [
        {
          hostId: 'id-1',
          hostName: 'sim-0001',
          usage: usage(10, [{ id: 'vm-a', cpuPercent: 5, memoryBytes: 1 }]),
        },
        { hostId: 'id-2', hostName: 'sim-0002', usage: usage(20) },
      ],
      AT,
    );
    expect(lines).toEqual([
      `cpu,host=sim-0001,host_id=id-1 usage_active=10 ${NS}`,
      `mem,host=sim-0001,host_id=id-1 available=1024i ${NS}`,
      `vm_cpu,host_id=id-1,vm_id=vm-a usage_active=5 ${NS}`,
      `cpu,host=sim-0002,host_id=id-2 usage_active=20 ${NS}`,
      `mem,host=sim-0002,host_id=id-2 available=1024i ${NS}`,
    ]);
  });

  it('is empty for no hosts', () => {
    expect(fleetUsageLines([], AT)).toEqual([]);
  });
});

describe('FleetMetrics', () => {
  afterEach(() => vi.unstubAllGlobals());

  function recordWrites(): { urls: string[]; bodies: string[] } {
    const seen = { urls: [] as string[], bodies: [] as string[] };
    vi.stubGlobal(
      'fetch',
      vi.fn(async (url: URL, init: RequestInit) => {
        seen.urls.push(String(url));
        seen.bodies.push(String(init.body));
        return new Response(null, { status: 204 });
      }),
    );
    return seen;
  }

  const options = { url: 'http://influx.test:8086', database: 'fleet', intervalSeconds: 10 };

  it('writes every host in one request per interval', async () => {
    const seen = recordWrites();
    const metrics = new FleetMetrics(options, () => undefined);
    for (let i = 1; i <= 3; i++) {
      metrics.add({ hostId: `id-${i}`, hostName: `sim-000${i}`, usage: async () => usage(i) });
    }
    await metrics.tick(AT);
    const writes = seen.urls.filter((url) => url.includes('/write'));
    expect(writes).toHaveLength(1);
    const body = seen.bodies[seen.urls.indexOf(writes[0]!)]!;
    expect(body.split('\n')).toHaveLength(6);
    for (let i = 1; i <= 3; i++)
      expect(body).toContain(`cpu,host=sim-000${i},host_id=id-${i} usage_active=${i}`);
  });

  it('leaves out a host whose sample fails, says so once, and a removed host', async () => {
    const seen = recordWrites();
    const logs: string[] = [];
    const metrics = new FleetMetrics(options, (line) => logs.push(line));
    metrics.add({ hostId: 'ok', hostName: 'sim-0001', usage: async () => usage(1) });
    metrics.add({
      hostId: 'bad',
      hostName: 'sim-0002',
      usage: async () => {
        throw new Error('boom');
      },
    });
    const remove = metrics.add({ hostId: 'gone', hostName: 'sim-0003', usage: async () => usage(3) });
    remove();
    await metrics.tick(AT);
    await metrics.tick(AT);
    const bodies = seen.bodies.filter((_, i) => seen.urls[i]!.includes('/write'));
    expect(bodies).toHaveLength(2);
    for (const body of bodies) {
      expect(body).toContain('host_id=ok');
      expect(body).not.toContain('host_id=bad');
      expect(body).not.toContain('host_id=gone');
    }
    expect(logs.filter((line) => line.includes('sim-0002'))).toHaveLength(1);
  });

  it('writes nothing when there is no host', async () => {
    const seen = recordWrites();
    const metrics = new FleetMetrics(options, () => undefined);
    await metrics.tick(AT);
    expect(seen.urls.filter((url) => url.includes('/write'))).toEqual([]);
  });
});
