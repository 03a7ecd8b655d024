import { eq } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hosts } from '../../db/schema.ts';
import { startMiniStack, type MiniStack } from '../helpers/mini-stack.ts';
import { createRunningServer, liveMigrate, waitForPhase, type MigrationBody } from '../helpers/migrations.ts';

// Every address is either on loopback or one this machine cannot listen on (documentation ranges): the
// destination's listener fails before the source would ever send a packet there.
const NOT_HERE = '198.51.100.7';

function networkEvent(m: MigrationBody) {
  return m.events.find((e) => e.type === 'migration_network' || e.type === 'migration_network_fallback');
}

describe('migration network', () => {
  let stack: MiniStack;

  beforeAll(async () => {
    stack = await startMiniStack({
      hosts: [
        { name: 'mig-a', migrationAddress: '127.0.0.2' },
        { name: 'mig-b', migrationAddress: '127.0.0.3' },
        { name: 'mig-broken', migrationAddress: NOT_HERE },
        { name: 'plain-1' },
        { name: 'plain-2' },
      ],
    });
  });
  afterAll(async () => stack?.stop());

  async function migrate(name: string, from: string, to: string) {
    await createRunningServer(stack, { name, host: from });
    const started = await liveMigrate(stack, name, { prefer_host: to });
    expect(started.status, JSON.stringify(started.body)).toBe(202);
    return waitForPhase(stack, started.body.id, ['completed', 'failed']);
  }

  it('uses the dedicated network when both hosts have one and it is reachable', async () => {
    const m = await migrate('net-1', 'mig-a', 'mig-b');
    expect(m.phase).toBe('completed');
    expect(networkEvent(m)).toMatchObject({
      type: 'migration_network',
      level: 'info',
      data: { network: 'migration', address: '127.0.0.3' },
    });
  });

  it('falls back to the management address with a warning saying why', async () => {
    const m = await migrate('net-2', 'mig-a', 'mig-broken');
    expect(m.phase).toBe('completed');
    const e = networkEvent(m);
    expect(e).toMatchObject({
      type: 'migration_network_fallback',
      level: 'warning',
      data: { network: 'management' },
    });
    expect(e?.message).toContain(`migration address ${NOT_HERE}`);
    expect(e?.message).toContain('using the management address 127.0.0.1');
  });

  it('uses the management address silently when neither host has a migration network', async () => {
    const m = await migrate('net-3', 'plain-1', 'plain-2');
    expect(m.phase).toBe('completed');
    expect(networkEvent(m)).toMatchObject({ type: 'migration_network', data: { network: 'management' } });
  });

  it('fails saying why when the destination is reachable on no network, and rolls back', async () => {
    await stack.db.db.update(hosts).set({ address: '198.51.100.8' }).where(eq(hosts.name, 'plain-1'));
    try {
      const m = await migrate('net-4', 'plain-2', 'plain-1');
      expect(m.phase).toBe('failed');
      expect(m.error).toMatch(
        /^no usable migration network: plain-2 cannot reach plain-1 on the management address 198\.51\.100\.8/,
      );
      expect((await stack.api<{ host: { name: string } }>('GET', '/v1/servers/net-4')).body.host.name).toBe(
        'plain-2',
      );
    } finally {
      await stack.db.db.update(hosts).set({ address: '127.0.0.1' }).where(eq(hosts.name, 'plain-1'));
    }
  });
});
