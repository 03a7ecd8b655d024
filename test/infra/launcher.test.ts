import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { planPorts } from '../../scripts/services/launcher/port-plan.ts';
import { RunningStack, type StoppableHandle } from '../../scripts/services/launcher/running-stack.ts';
import { tokenFromEnvOrFile } from '../../scripts/services/launcher/tokens.ts';
import { freePort } from '../../scripts/services/ports.ts';
import { startProcess } from '../../scripts/services/process.ts';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'vmmig-launcher-'));
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

describe('planPorts', () => {
  it('keeps free remembered ports, replaces taken ones, and never hands out a port twice', async () => {
    const holder = net.createServer();
    await new Promise<void>((resolve) => holder.listen(0, '127.0.0.1', resolve));
    const taken = (holder.address() as net.AddressInfo).port;
    const rememberedFree = await freePort();
    try {
      const { plan, moved } = await planPorts(
        { postgres: rememberedFree, etcdClient: taken, agents: { 'host-1': rememberedFree } },
        ['host-1', 'host-2'],
        [8080],
      );
      expect(plan.postgres).toBe(rememberedFree);
      expect(plan.etcdClient).not.toBe(taken);
      expect(moved).toEqual([`etcdClient (was ${taken})`, `host-1 (was ${rememberedFree})`]);
      const all = [
        plan.postgres,
        plan.etcdClient,
        plan.etcdPeer,
        plan.influx,
        plan.influxRpc,
        ...Object.values(plan.agents),
      ];
      expect(new Set(all).size).toBe(all.length);
      expect(all).not.toContain(8080);
    } finally {
      holder.close();
    }
  });
});

describe('RunningStack', () => {
  const handle = (name: string, log: string[]): StoppableHandle => {
    const child = startProcess({
      name,
      command: 'sleep',
      args: ['60'],
      logFile: path.join(root, `${name}.log`),
    });
    return {
      process: child,
      stop: async () => {
        log.push(name);
        await child.stop();
      },
    };
  };

  it('stops in reverse start order, a group together, and reports only unexpected exits', async () => {
    const stopped: string[] = [];
    const crashes: string[] = [];
    const stack = new RunningStack((name) => crashes.push(name));
    const doomed = handle('doomed', []);
    for (const [name, h, group] of [
      ['temporal', handle('temporal', stopped), undefined],
      ['postgres', handle('postgres', stopped), undefined],
      ['doomed', doomed, undefined],
      ['agent-1', handle('agent-1', stopped), 'agents'],
      ['agent-2', handle('agent-2', stopped), 'agents'],
    ] as const) {
      stack.add(name, h, group);
    }
    process.kill(doomed.process.pid, 'SIGKILL');
    await doomed.process.exited;
    await expect.poll(() => crashes).toEqual(['doomed']);

    await stack.stopAll(() => undefined);
    expect(stopped.slice(0, 2).sort()).toEqual(['agent-1', 'agent-2']);
    expect(stopped.slice(2)).toEqual(['postgres', 'temporal']);
    expect(crashes).toEqual(['doomed']);
  });
});

describe('tokenFromEnvOrFile', () => {
  it('generates a token once into a mode 600 file and prefers the environment', () => {
    const file = path.join(root, 'api-token');
    const first = tokenFromEnvOrFile(undefined, file);
    expect(first.token).toMatch(/^[\w-]{32}$/);
    expect(fs.statSync(file).mode & 0o777).toBe(0o600);
    expect(tokenFromEnvOrFile(undefined, file).token).toBe(first.token);
    expect(tokenFromEnvOrFile('from-env', file)).toEqual({ token: 'from-env', file: null });
  });
});
