import { spawn } from 'node:child_process';
import { Etcd3 } from 'etcd3';
import { readFileSync } from 'node:fs';
import { cpus } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { type SimFleet, startSimFleet } from '../../agent/fleet.ts';
import { hostHealthKey } from '../../domain/config.ts';
import { hostCredential } from '../../domain/host-credential.ts';
import { startMiniStack, type MiniStack } from '../helpers/mini-stack.ts';
import { createRunningServer, migrateToEnd, type ServerBody } from '../helpers/migrations.ts';
import { rememberSecret } from '../helpers/secret-ledger.ts';
import { waitFor } from '../helpers/wait.ts';

const HOSTS = 20;
const TTL_S = 5;
const MEASURE = Number(process.env.SIM_FLEET_MEASURE ?? 0);

interface HostItem {
  id: string;
  name: string;
  status: string;
  cpus: number;
  memoryMb: number;
}

function fleetOf(stack: MiniStack, count: number, prefix: string, database: string | null, logs: string[]) {
  return startSimFleet({
    count,
    dir: path.join(stack.dir, prefix),
    prefix,
    seed: 7,
    host: '127.0.0.1',
    sharedStorageDir: path.join(stack.dir, 'shared'),
    networks: ['default'],
    liveness: { endpoints: inject('etcdEndpoints'), prefix: stack.etcdPrefix, ttlSeconds: TTL_S },
    metrics: database === null ? null : { url: inject('influxUrl'), database, intervalSeconds: 1 },
    registration: { apiUrl: stack.apiUrl, apiToken: stack.apiToken, spreadMs: 2_000 },
    credentialFor: (hostId, hostName) => {
      const credential = hostCredential(stack.agentCredentialKey, hostId, 1);
      rememberSecret(`the credential of ${hostName}`, credential);
      return credential;
    },
    peerToken: stack.peerToken,
    log: (line) => logs.push(line),
  });
}

async function listHosts(stack: MiniStack, prefix = 'sim-'): Promise<HostItem[]> {
  const items: HostItem[] = [];
  let cursor: string | null = null;
  do {
    const query: string = cursor === null ? '' : `&cursor=${encodeURIComponent(cursor)}`;
    const page = await stack.api<{ items: HostItem[]; next_cursor: string | null }>(
      'GET',
      `/v1/hosts?limit=200${query}`,
    );
    items.push(...page.body.items);
    cursor = page.body.next_cursor;
  } while (cursor !== null);
  return items.filter((host) => host.name.startsWith(prefix));
}

/** `tsx agent/fleet.ts` with exactly this environment (and PATH, HOME). */
async function runFleetProcess(env: Record<string, string>) {
  const child = spawn(process.execPath, ['--import', 'tsx', 'agent/fleet.ts'], {
    cwd: path.resolve(import.meta.dirname, '../..'),
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { pid: child.pid!, exited, stdout: () => stdout, stderr: () => stderr };
}

/** user + system clock ticks (1/100 s) of a process, from /proc. */
function processCpuTicks(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return Number(fields[11]) + Number(fields[12]);
}

function processRssMiB(pid: number): number {
  return Math.round(
    Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) / 1024,
  );
}

async function healthKeys(etcd: Etcd3, stack: MiniStack): Promise<string[]> {
  return etcd.getAll().prefix(`/${stack.etcdPrefix}/host/health/`).keys();
}

describe('a sim fleet: many hosts in one process', () => {
  let stack: MiniStack;
  let fleet: SimFleet;
  let etcd: Etcd3;
  const logs: string[] = [];
  const database = `fleet_${Date.now()}`;

  beforeAll(async () => {
    stack = await startMiniStack({ hosts: [] });
    etcd = new Etcd3({ hosts: inject('etcdEndpoints') });
    fleet = await fleetOf(stack, HOSTS, 'sim-', database, logs);
  });
  afterAll(async () => {
    await fleet?.stop();
    etcd?.close();
    await stack?.stop();
  });

  it('registers every host online with its own id and size', async () => {
    const hosts = await waitFor(`${HOSTS} fleet hosts online`, async () => {
      const items = await listHosts(stack);
      return items.filter((h) => h.status === 'online').length === HOSTS ? items : null;
    });
    expect(new Set(hosts.map((h) => h.id)).size).toBe(HOSTS);
    expect(hosts.map((h) => h.name).sort()).toEqual(fleet.hosts.map((h) => h.name));
    for (const host of fleet.hosts) {
      expect(hosts.find((h) => h.name === host.name)).toMatchObject({
        id: host.hostId,
        cpus: host.cpus,
        memoryMb: host.memoryMb,
      });
    }
    expect(new Set(fleet.hosts.map((h) => h.url)).size).toBe(HOSTS);
  });

  it('holds one health key per host', async () => {
    const keys = await waitFor('every host to hold its key', async () => {
      const found = await healthKeys(etcd, stack);
      return found.length === HOSTS ? found : null;
    });
    expect(keys.sort()).toEqual(fleet.hosts.map((h) => hostHealthKey(stack.etcdPrefix, h.hostId)).sort());
    // Renewed over the shared keepalive stream: every key outlives its lease's TTL.
    await new Promise((resolve) => setTimeout(resolve, (TTL_S + 1) * 1000));
    expect((await healthKeys(etcd, stack)).sort()).toEqual(keys);
  });

  it("writes each host's metrics tagged with that host", async () => {
    const tagged = await waitFor('every host in InfluxDB', async () => {
      const q = encodeURIComponent('SHOW TAG VALUES FROM "cpu" WITH KEY = "host_id"');
      const res = await fetch(`${inject('influxUrl')}/query?db=${database}&q=${q}`);
      const body = (await res.json()) as { results: { series?: { values: [string, string][] }[] }[] };
      const values = body.results[0]?.series?.[0]?.values.map(([, v]) => v) ?? [];
      return values.length === HOSTS ? values : null;
    });
    expect(tagged.sort()).toEqual(fleet.hosts.map((h) => h.hostId).sort());
  });

  it('live-migrates a guest between two hosts of the fleet through the API', async () => {
    const [source] = fleet.hosts;
    const vm = await createRunningServer(stack, {
      name: 'fleet-vm',
      host: source!.name,
      memoryMb: 1024,
      dirtyRateMibs: 1,
    });
    expect(vm.host.name).toBe(source!.name);
    const done = await migrateToEnd(stack, 'fleet-vm');
    expect(done.error).toBeNull();
    expect(done.phase).toBe('completed');
    const after = (await stack.api<ServerBody>('GET', '/v1/servers/fleet-vm')).body;
    expect(after.status).toBe('running');
    expect(after.host.name).not.toBe(source!.name);
    const destination = fleet.hosts.find((h) => h.name === after.host.name)!;
    expect((await destination.agent.driver.getGuest(vm.id))?.status).toBe('running');
    expect(await source!.agent.driver.getGuest(vm.id)).toBeNull();
  });

  it('revokes every lease when it stops', async () => {
    await fleet.stop();
    expect(await healthKeys(etcd, stack)).toEqual([]);
    const hosts = await waitFor('every host offline', async () => {
      const items = await listHosts(stack);
      return items.every((h) => h.status !== 'online') ? items : null;
    });
    expect(hosts).toHaveLength(HOSTS);
  });

  it('exits 2 naming a bad variable (tsx agent/fleet.ts)', async () => {
    const run = await runFleetProcess({ SIM_FLEET_HOSTS: 'many', SIM_FLEET_DIR: stack.dir });
    const code = await run.exited;
    expect(code).toBe(2);
    expect(run.stderr()).toContain("SIM_FLEET_HOSTS must be an integer from 1 to 100000, got 'many'");
  });

  // Not an assertion: SIM_FLEET_MEASURE=1000 logs what a fleet of that size costs, run as the benchmark runs it
  // (`tsx agent/fleet.ts`, its own process) against this stack's API, etcd and InfluxDB.
  it.runIf(MEASURE > 0)(
    `measures a fleet of ${MEASURE} hosts in its own process`,
    async () => {
      const spreadS = 60;
      const run = await runFleetProcess({
        SIM_FLEET_HOSTS: String(MEASURE),
        SIM_FLEET_DIR: path.join(stack.dir, 'measure'),
        SIM_FLEET_PREFIX: 'm-',
        SIM_FLEET_QUIET: 'true',
        SIM_FLEET_CREDENTIAL_KEY: stack.agentCredentialKey,
        SIM_FLEET_API_TOKEN: stack.apiToken,
        SIM_FLEET_REGISTER_SPREAD_S: String(spreadS),
        API_URL: stack.apiUrl,
        AGENT_PEER_TOKEN: stack.peerToken,
        ETCD_ENDPOINTS: inject('etcdEndpoints').join(','),
        ETCD_PREFIX: stack.etcdPrefix,
        INFLUX_URL: inject('influxUrl'),
        INFLUX_DB: `${database}_m`,
      });
      try {
        const startedLine = await waitFor(
          'the fleet to start',
          async () => /started in .*/.exec(run.stdout())?.[0],
          {
            timeoutMs: 300_000,
            intervalMs: 250,
          },
        );
        await waitFor(
          `${MEASURE} measured leases`,
          async () => (await healthKeys(etcd, stack)).length >= MEASURE,
          {
            timeoutMs: 120_000,
            intervalMs: 1_000,
          },
        );
        // Every host registered once (the spread), then the fleet at rest.
        await new Promise((resolve) => setTimeout(resolve, (spreadS + 5) * 1000));
        const before = processCpuTicks(run.pid);
        const idleStart = performance.now();
        await new Promise((resolve) => setTimeout(resolve, 30_000));
        const cpuPercent =
          ((processCpuTicks(run.pid) - before) / 100 / ((performance.now() - idleStart) / 1000)) * 100;
        const registered = (await listHosts(stack, 'm-')).length;
        console.log(
          `sim fleet of ${MEASURE} (own process): ${startedLine}; ${registered} registered; after ${spreadS + 35} s RSS ` +
            `${processRssMiB(run.pid)} MiB, CPU ${cpuPercent.toFixed(1)} % of one core over 30 s at rest (of ${cpus().length} cores)`,
        );
      } finally {
        const stopStarted = performance.now();
        process.kill(run.pid, 'SIGTERM');
        const code = await run.exited;
        console.log(
          `sim fleet of ${MEASURE}: SIGTERM to exit ${code} in ${Math.round(performance.now() - stopStarted)} ms, ` +
            `${(await healthKeys(etcd, stack)).length} health keys left`,
        );
      }
    },
    900_000,
  );
});
