import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { holdsLiveCopy } from '../../domain/cold-migration.ts';
import { startMiniStack, type MiniStack } from '../helpers/mini-stack.ts';
import { createRunningServer, type ServerBody } from '../helpers/migrations.ts';
import { TcpProxy } from '../helpers/tcp-proxy.ts';
import { waitFor } from '../helpers/wait.ts';

interface HostEvent {
  action: string;
  notes: string;
  data: Record<string, unknown>;
  at: string;
}

const VICTIM = 'qp1';
const SURVIVOR = 'qp2';
const SAMPLE_MS = 100;

interface Sample {
  at: number;
  /** Run state per host as its agent reports it; null when the agent has no such guest or did not answer. */
  states: Record<string, string | null>;
}

/**
 * A live host cut from etcd only (its agent and QEMU keep running; its etcd traffic goes through a proxy the test
 * cuts): it must fence its guest before the guest is restarted elsewhere, and when it reconnects it must not run
 * it again. A sampler asks both agents every 100 ms and never sees the guest live on both.
 */
describe('a QEMU host partitioned from etcd fences before its guest runs elsewhere', () => {
  let stack: MiniStack;
  let proxy: TcpProxy;

  beforeAll(async () => {
    const [endpoint] = inject('etcdEndpoints');
    proxy = await TcpProxy.start(endpoint!);
    stack = await startMiniStack({
      hosts: [
        { name: VICTIM, driver: 'qemu', ttlSeconds: 4, etcdEndpoints: [proxy.url] },
        { name: SURVIVOR, driver: 'qemu', ttlSeconds: 10 },
      ],
      hostWatch: { fencingMarginMs: 1_000 },
    });
  }, 120_000);
  afterAll(async () => {
    await stack?.stop();
    await proxy?.close();
  });

  const stateOn = async (host: string, guestId: string): Promise<string | null> => {
    const agent = stack.agents.get(host);
    if (!agent) return null;
    try {
      const res = await fetch(`${agent.url}/v1/guests/${guestId}`, {
        headers: { authorization: `Bearer ${stack.agentCredential(host)}` },
        signal: AbortSignal.timeout(2_000),
      });
      return res.ok ? ((await res.json()) as { status: string }).status : null;
    } catch {
      return null;
    }
  };
  const hostEvents = async (host: string) =>
    (await stack.api<{ items: HostEvent[] }>('GET', `/v1/hosts/${host}/events`)).body.items;

  it('fences, is rescued elsewhere, reconnects, and never runs the guest twice', async () => {
    const flag = await stack.api('POST', `/v1/hosts/${VICTIM}/auto-migrate-on-host-down`, {
      auto_migrate_on_host_down: 'enable',
    });
    expect(flag.status).toBe(200);
    const guest = await createRunningServer(stack, { name: 'cut-off', host: VICTIM, memoryMb: 128 });

    const samples: Sample[] = [];
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        const at = Date.now();
        const [victim, survivor] = await Promise.all([
          stateOn(VICTIM, guest.id),
          stateOn(SURVIVOR, guest.id),
        ]);
        samples.push({ at, states: { [VICTIM]: victim, [SURVIVOR]: survivor } });
        await new Promise((resolve) => setTimeout(resolve, Math.max(0, SAMPLE_MS - (Date.now() - at))));
      }
    })();

    const cutAt = Date.now();
    proxy.partition();
    const rescued = await waitFor(
      'the guest running on the other host',
      async () => {
        const server = (await stack.api<ServerBody>('GET', '/v1/servers/cut-off')).body;
        return server.host.name === SURVIVOR && server.status === 'running' && server.live?.heartbeat
          ? server
          : null;
      },
      { timeoutMs: 90_000 },
    );
    expect(rescued.host.name).toBe(SURVIVOR);
    const fencedLog = stack.agentLogs.get(VICTIM)!.find((line) => line.startsWith('fencing: SIGKILL sent'));
    expect(fencedLog, stack.agentLogs.get(VICTIM)!.join('\n')).toBeDefined();

    proxy.heal();
    const returned = await waitFor(
      'the victim back, its stale copy removed',
      async () => (await hostEvents(VICTIM)).find((e) => e.action === 'host_returned') ?? null,
      { timeoutMs: 60_000 },
    ).catch(async (err: unknown) => {
      throw new Error(
        `${String(err)}; victim log: ${stack.agentLogs.get(VICTIM)!.slice(-15).join(' | ')}; events: ${JSON.stringify((await hostEvents(VICTIM)).map((e) => e.action))}`,
      );
    });
    expect(JSON.stringify(returned.data.removed)).toContain(guest.id);
    // A few more samples after the return, then stop.
    await new Promise((resolve) => setTimeout(resolve, 2_000));
    sampling = false;
    await sampler;

    const live = (s: Sample, host: string) => holdsLiveCopy(s.states[host] ?? null);
    const twice = samples.filter((s) => live(s, VICTIM) && live(s, SURVIVOR));
    expect(twice, JSON.stringify(twice.slice(0, 3))).toEqual([]);
    const lastOnVictim = samples.filter((s) => live(s, VICTIM)).at(-1)?.at ?? 0;
    const firstOnSurvivor = samples.find((s) => live(s, SURVIVOR))?.at ?? Infinity;
    expect(lastOnVictim).toBeLessThan(firstOnSurvivor);
    expect(samples.filter((s) => s.at > firstOnSurvivor && live(s, VICTIM))).toEqual([]);
    expect(await stateOn(VICTIM, guest.id)).toBeNull();
    console.log(
      `partition: cut -> victim's last live sample ${lastOnVictim - cutAt} ms, -> running on ${SURVIVOR} ${firstOnSurvivor - cutAt} ms; ${samples.length} samples, none live on both`,
    );
  }, 240_000);
});
