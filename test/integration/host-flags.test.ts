import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startMiniStack, type MiniStack } from '../helpers/mini-stack.ts';

const run = promisify(execFile);

interface HostBody {
  id: string;
  name: string;
  autoMigrateOnHostDown: boolean;
  autoMigrateOnHostShutdown: boolean;
}
interface ErrorBody {
  error: { code: string; field?: string; message: string };
}
interface EventsBody {
  items: { id: number; at: string; hostId: string; hostName: string; action: string; notes: string }[];
}

describe("hosts' auto-migrate flags, their events, and the cluster resilience policy", () => {
  let stack: MiniStack;

  beforeAll(async () => {
    stack = await startMiniStack({ hosts: [{ name: 'f1' }, { name: 'f2' }], worker: false });
  });
  afterAll(async () => stack?.stop());

  const setFlags = <T = HostBody>(host: string, body: unknown) =>
    stack.api<T>('POST', `/v1/hosts/${host}/auto-migrate-on-host-down`, body);
  const flags = async (host: string) => {
    const { autoMigrateOnHostDown, autoMigrateOnHostShutdown } = (
      await stack.api<HostBody>('GET', `/v1/hosts/${host}`)
    ).body;
    return { autoMigrateOnHostDown, autoMigrateOnHostShutdown };
  };
  const vmctl = (...args: string[]) =>
    run(process.execPath, [path.resolve('cli/bin.js'), ...args], {
      env: { ...process.env, VMCTL_API_URL: stack.apiUrl, API_TOKEN: stack.apiToken },
    });

  it('round-trips the flags by name or id; a flag left out keeps its value', async () => {
    expect(await flags('f1')).toEqual({ autoMigrateOnHostDown: false, autoMigrateOnHostShutdown: false });
    const down = await setFlags('f1', { auto_migrate_on_host_down: 'enable' });
    expect(down.status).toBe(200);
    expect(down.body).toMatchObject({
      name: 'f1',
      autoMigrateOnHostDown: true,
      autoMigrateOnHostShutdown: false,
    });
    const both = await setFlags(down.body.id, { auto_migrate_on_host_shutdown: 'enable' });
    expect(both.body).toMatchObject({ autoMigrateOnHostDown: true, autoMigrateOnHostShutdown: true });
    expect(await flags('f1')).toEqual({ autoMigrateOnHostDown: true, autoMigrateOnHostShutdown: true });
    const unchanged = await setFlags('f1', {});
    expect(unchanged.body).toMatchObject({ autoMigrateOnHostDown: true, autoMigrateOnHostShutdown: true });
    const off = await setFlags('f1', {
      auto_migrate_on_host_down: 'disable',
      auto_migrate_on_host_shutdown: 'disable',
    });
    expect(off.body).toMatchObject({ autoMigrateOnHostDown: false, autoMigrateOnHostShutdown: false });
  });

  it("refuses shutdown without down in Cloudpods' words, and down off under shutdown", async () => {
    const refused = await setFlags<ErrorBody>('f2', { auto_migrate_on_host_shutdown: 'enable' });
    expect(refused.status).toBe(400);
    expect(refused.body.error).toEqual({
      code: 'invalid_request',
      field: 'auto_migrate_on_host_down',
      message: 'must enable auto_migrate_on_host_down at same time',
    });
    expect(await flags('f2')).toEqual({ autoMigrateOnHostDown: false, autoMigrateOnHostShutdown: false });

    await setFlags('f2', { auto_migrate_on_host_down: 'enable', auto_migrate_on_host_shutdown: 'enable' });
    const downOff = await setFlags<ErrorBody>('f2', { auto_migrate_on_host_down: 'disable' });
    expect(downOff.status).toBe(400);
    expect(downOff.body.error.field).toBe('auto_migrate_on_host_shutdown');
    expect(downOff.body.error.message).toMatch(/^must disable auto_migrate_on_host_shutdown at same time/);
    expect(await flags('f2')).toEqual({ autoMigrateOnHostDown: true, autoMigrateOnHostShutdown: true });
    await setFlags('f2', { auto_migrate_on_host_down: 'disable', auto_migrate_on_host_shutdown: 'disable' });
  });

  it('answers an unknown host with a 404 naming it', async () => {
    for (const id of ['nope', '00000000-0000-4000-8000-000000000000']) {
      const missing = await setFlags<ErrorBody>(id, { auto_migrate_on_host_down: 'enable' });
      expect(missing.status).toBe(404);
      expect(missing.body.error.message).toBe(`host '${id}' not found`);
      expect((await stack.api<ErrorBody>('GET', `/v1/hosts/${id}/events`)).status).toBe(404);
    }
  });

  it.each([
    [{ auto_migrate_on_host_down: 'yes' }, 'auto_migrate_on_host_down', /enable or disable/],
    [{ auto_migrate_on_host_shutdown: true }, 'auto_migrate_on_host_shutdown', /enable or disable/],
    [{ auto_migrate: 'enable' }, '(body)', /unknown field\(s\) auto_migrate; the fields are/],
    [['enable'], '(body)', /a JSON object/],
  ])('refuses %j with a 400 naming %s', async (body, field, message) => {
    const res = await setFlags<ErrorBody>('f1', body);
    expect(res.status).toBe(400);
    expect(res.body.error.field).toBe(field);
    expect(res.body.error.message).toMatch(message);
  });

  it('records what changed as update events, readable newest first, with a limit', async () => {
    const { body } = await stack.api<EventsBody>('GET', '/v1/hosts/f1/events');
    expect(body.items.map((e) => e.action)).toEqual(['update', 'update', 'update', 'registered']);
    expect(body.items.map((e) => e.notes).slice(0, 3)).toEqual([
      'host f1: auto_migrate_on_host_down enable -> disable, auto_migrate_on_host_shutdown enable -> disable',
      'host f1: auto_migrate_on_host_shutdown disable -> enable',
      'host f1: auto_migrate_on_host_down disable -> enable',
    ]);
    expect(body.items[0]).toMatchObject({ hostName: 'f1', hostId: expect.any(String) });
    const limited = await stack.api<EventsBody>('GET', '/v1/hosts/f1/events?limit=1');
    expect(limited.body.items).toHaveLength(1);
    const bad = await stack.api<ErrorBody>('GET', '/v1/hosts/f1/events?limit=0');
    expect(bad.status).toBe(400);
    expect(bad.body.error.field).toBe('limit');
  });

  it('sets the resilience policy through the migration config and refuses an invalid one', async () => {
    type ConfigBody = { config: { resiliencePolicy: string }; defaults: { resiliencePolicy: string } };
    const initial = await stack.api<ConfigBody>('GET', '/v1/migration-config');
    expect(initial.body.config.resiliencePolicy).toBe('all');
    expect(initial.body.defaults.resiliencePolicy).toBe('all');
    const set = await stack.api<ConfigBody>('PUT', '/v1/migration-config', { resiliencePolicy: 'ha-only' });
    expect(set.status).toBe(200);
    expect((await stack.api<ConfigBody>('GET', '/v1/migration-config')).body.config.resiliencePolicy).toBe(
      'ha-only',
    );
    const bad = await stack.api<ErrorBody>('PUT', '/v1/migration-config', { resiliencePolicy: 'sometimes' });
    expect(bad.status).toBe(400);
    expect(bad.body.error.field).toBe('resiliencePolicy');
    expect(bad.body.error.message).toBe('resiliencePolicy: one of all, ha-only, none');
    await stack.api('PUT', '/v1/migration-config', {});
    expect((await stack.api<ConfigBody>('GET', '/v1/migration-config')).body.config.resiliencePolicy).toBe(
      'all',
    );
  });

  it('works through vmctl', async () => {
    const set = await vmctl('host-auto-migrate-on-host-down', 'f2', '--auto-migrate-on-host-down', 'enable');
    expect(set.stdout).toMatch(/auto_migrate_on_host_down\s+auto_migrate_on_host_shutdown/);
    expect(set.stdout).toMatch(/f2\s+enable\s+disable/);

    const refused = await vmctl(
      'host-auto-migrate-on-host-down',
      'f1',
      '--auto-migrate-on-host-shutdown',
      'enable',
    ).catch((err: { code: number; stderr: string }) => err);
    expect(refused).toMatchObject({ code: 1 });
    expect((refused as { stderr: string }).stderr).toContain(
      'must enable auto_migrate_on_host_down at same time',
    );

    const events = await vmctl('host-events', 'f2');
    expect(events.stdout).toMatch(/Action/);
    expect(events.stdout).toMatch(/update\s+info\s+host f2: auto_migrate_on_host_down disable -> enable/);

    const config = await vmctl('migration-config-set', 'resiliencePolicy=none');
    expect(JSON.parse(config.stdout)).toMatchObject({ resiliencePolicy: 'none' });
    await stack.api('PUT', '/v1/migration-config', {});
  });
});
