import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { eq, inArray } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { insertMigrationAlert } from '../../db/alert-store.ts';
import { setHostMaintenance } from '../../db/host-store.ts';
import { events, hosts } from '../../db/schema.ts';
import { encodeCursor } from '../../domain/paging.ts';
import { startMiniStack, type MiniStack } from '../helpers/mini-stack.ts';

const run = promisify(execFile);

interface Page<T> {
  items: T[];
  next_cursor: string | null;
}
interface ErrorBody {
  error: { code: string; field: string; message: string };
}
interface Named {
  id: string;
  name: string;
}
interface EventItem {
  id: number;
  at: string;
  action: string;
  level: string;
  ruleName?: string | null;
}

/**
 * Every list endpoint besides servers and migrations (api.test.ts, live-migrate.test.ts): keyset pages in a
 * stable order, filters applied in the database (so a page is never short while a next one exists), and a 400
 * naming the field for a bad limit, cursor or filter.
 */
describe('list endpoints page and filter server-side', () => {
  let stack: MiniStack;
  const hostIds = new Map<string, string>();

  beforeAll(async () => {
    stack = await startMiniStack({
      hosts: [
        { name: 'lp-c' },
        { name: 'lp-a' },
        { name: 'lp-e' },
        { name: 'lp-b' },
        { name: 'lp-off', liveness: false },
      ],
    });
    const db = stack.db.db;
    for (const h of await db.select().from(hosts)) hostIds.set(h.name, h.id);
    await setHostMaintenance(db, hostIds.get('lp-c')!, true);
    await db.update(hosts).set({ enabled: false }).where(eq(hosts.name, 'lp-e'));
    await db
      .update(hosts)
      .set({ labels: { zone: 'z1' } })
      .where(inArray(hosts.name, ['lp-a', 'lp-b', 'lp-off']));
  });
  afterAll(async () => stack?.stop());

  /** Every page of a list, checking each is full but the last, and the last says there is no more. */
  async function allPages<T>(path: string, limit: number): Promise<{ items: T[]; pages: number }> {
    const items: T[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const sep = path.includes('?') ? '&' : '?';
      const url: string = `${path}${sep}limit=${limit}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`;
      const page = await stack.api<Page<T>>('GET', url);
      expect(page.status, `${url}: ${JSON.stringify(page.body)}`).toBe(200);
      expect(Object.keys(page.body).sort()).toEqual(['items', 'next_cursor']);
      cursor = page.body.next_cursor;
      if (cursor !== null) expect(page.body.items).toHaveLength(limit);
      else expect(page.body.items.length).toBeLessThanOrEqual(limit);
      items.push(...page.body.items);
      pages++;
    } while (cursor !== null);
    return { items, pages };
  }
  const names = (items: { name: string }[]) => items.map((i) => i.name);

  async function expect400(path: string, field: string) {
    const res = await stack.api<ErrorBody>('GET', path);
    expect(res.status, `${path}: ${JSON.stringify(res.body)}`).toBe(400);
    expect(res.body.error.field).toBe(field);
    expect(res.body.error.message).toContain(field);
  }

  it('pages the hosts by name and filters them on status, enabled, driver and label', async () => {
    const all = await allPages<Named & { status: string }>('/v1/hosts', 2);
    expect(names(all.items)).toEqual(['lp-a', 'lp-b', 'lp-c', 'lp-e', 'lp-off']);
    expect(all.pages).toBe(3);

    // The lease-derived status is filtered while reading the rows: one host a page, none short.
    const online = await allPages<Named & { status: string }>('/v1/hosts?status=online', 1);
    expect(names(online.items)).toEqual(['lp-a', 'lp-b', 'lp-e']);
    expect(online.items.every((h) => h.status === 'online')).toBe(true);
    expect(names((await allPages<Named>('/v1/hosts?status=offline', 1)).items)).toEqual(['lp-off']);
    expect(names((await allPages<Named>('/v1/hosts?status=maintenance', 1)).items)).toEqual(['lp-c']);
    expect(names((await allPages<Named>('/v1/hosts?enabled=false', 2)).items)).toEqual(['lp-e']);
    expect((await allPages<Named>('/v1/hosts?enabled=true', 2)).items).toHaveLength(4);
    expect((await allPages<Named>('/v1/hosts?driver=sim', 2)).items).toHaveLength(5);
    expect((await allPages<Named>('/v1/hosts?driver=qemu', 2)).items).toEqual([]);
    const zoned = await allPages<Named>(`/v1/hosts?label=${encodeURIComponent('zone=z1')}&status=online`, 1);
    expect(names(zoned.items)).toEqual(['lp-a', 'lp-b']);

    await expect400('/v1/hosts?status=up', 'status');
    await expect400('/v1/hosts?enabled=yes', 'enabled');
    await expect400('/v1/hosts?driver=xen', 'driver');
    await expect400('/v1/hosts?label=zone', 'label');
    await expect400('/v1/hosts?limit=0', 'limit');
    await expect400('/v1/hosts?limit=1001', 'limit');
    await expect400('/v1/hosts?cursor=nonsense', 'cursor');
    await expect400(
      `/v1/hosts?cursor=${encodeCursor('servers', { sort: 'lp-a', id: hostIds.get('lp-a')! })}`,
      'cursor',
    );
    // Of this list, but not a key it could have written: still the client's 400, not a database error.
    await expect400(
      `/v1/hosts?cursor=${encodeCursor('hosts', { sort: 'lp-a', id: 'not-a-uuid' })}`,
      'cursor',
    );
  });

  it("pages a host's events newest first, ties broken by id, filtered on type, level and since", async () => {
    const db = stack.db.db;
    const hostId = hostIds.get('lp-a')!;
    const tied = new Date('2030-01-01T00:00:00.123456Z');
    const seeded = [
      ...[1, 2, 3, 4].map((n) => ({
        type: 'paging_tied',
        level: 'info' as const,
        at: tied,
        message: `t${n}`,
      })),
      { type: 'paging_old', level: 'warning' as const, at: new Date('2029-06-01T00:00:00Z'), message: 'old' },
      { type: 'paging_new', level: 'error' as const, at: new Date('2031-01-01T00:00:00Z'), message: 'new' },
    ];
    await db.insert(events).values(seeded.map((e) => ({ ...e, subjectKind: 'host', subjectId: hostId })));
    const expected = (await db.select().from(events).where(eq(events.subjectId, hostId))).sort(
      (a, b) => b.at.getTime() - a.at.getTime() || b.id - a.id,
    );

    const all = await allPages<EventItem>('/v1/hosts/lp-a/events', 2);
    expect(all.items.map((e) => e.id)).toEqual(expected.map((e) => e.id));
    expect(all.items.slice(0, 5).map((e) => e.action)).toEqual([
      'paging_new',
      'paging_tied',
      'paging_tied',
      'paging_tied',
      'paging_tied',
    ]);

    const tiedOnly = await allPages<EventItem>('/v1/hosts/lp-a/events?type=paging_tied', 3);
    expect(tiedOnly.items.map((e) => e.id)).toEqual(
      expected.filter((e) => e.type === 'paging_tied').map((e) => e.id),
    );
    expect(tiedOnly.pages).toBe(2);
    expect(
      (await allPages<EventItem>('/v1/hosts/lp-a/events?level=warning', 1)).items.map((e) => e.action),
    ).toEqual(['paging_old']);
    const since = await allPages<EventItem>(
      `/v1/hosts/lp-a/events?since=${encodeURIComponent('2030-01-01T00:00:00Z')}`,
      2,
    );
    expect(since.items.map((e) => e.action)).toEqual(['paging_new', ...Array(4).fill('paging_tied')]);
    expect((await allPages<EventItem>('/v1/hosts/lp-b/events?type=paging_tied', 2)).items).toEqual([]);

    await expect400('/v1/hosts/lp-a/events?since=yesterday', 'since');
    await expect400('/v1/hosts/lp-a/events?level=fatal', 'level');
    await expect400('/v1/hosts/lp-a/events?limit=x', 'limit');
    await expect400(
      `/v1/hosts/lp-a/events?cursor=${encodeCursor('host-events', { sort: 'yesterday', id: '1' })}`,
      'cursor',
    );
    await expect400(
      `/v1/hosts/lp-a/events?cursor=${encodeCursor('hosts', { sort: 'lp-a', id: hostId })}`,
      'cursor',
    );
  });

  it('pages the alert rules by name filtered on enabled and metric, and their events', async () => {
    const db = stack.db.db;
    const rule = (name: string, metric: 'cpu.usage_active' | 'mem.available', enabled: boolean) =>
      insertMigrationAlert(db, {
        name,
        metric,
        threshold: 80,
        periodS: 60,
        enabled,
        sourceHostIds: [hostIds.get('lp-a')!],
      });
    const rules = [
      await rule('r-c', 'cpu.usage_active', true),
      await rule('r-a', 'mem.available', true),
      await rule('r-b', 'cpu.usage_active', false),
    ];
    const all = await allPages<Named & { sourceHosts: { name: string | null }[] }>('/v1/migration-alerts', 2);
    expect(names(all.items)).toEqual(['r-a', 'r-b', 'r-c']);
    expect(all.items[0]?.sourceHosts).toEqual([{ id: hostIds.get('lp-a'), name: 'lp-a' }]);
    expect(names((await allPages<Named>('/v1/migration-alerts?enabled=false', 1)).items)).toEqual(['r-b']);
    expect(names((await allPages<Named>('/v1/migration-alerts?metric=cpu.usage_active', 1)).items)).toEqual([
      'r-b',
      'r-c',
    ]);
    await expect400('/v1/migration-alerts?metric=disk', 'metric');
    await expect400('/v1/migration-alerts?enabled=1', 'enabled');

    const ruleIds = rules.map((r) => (r === 'exists' ? '' : r.id));
    await db.insert(events).values(
      [0, 1, 2, 3, 4].map((n) => ({
        subjectKind: 'rule',
        subjectId: ruleIds[n % 3]!,
        type: n % 2 === 0 ? 'migrating' : 'skipped',
        at: new Date(Date.UTC(2030, 0, 1, 0, 0, n)),
        message: `e${n}`,
      })),
    );
    const every = await allPages<EventItem>('/v1/migration-alert-events', 2);
    expect(every.items.map((e) => e.ruleName)).toEqual(['r-a', 'r-c', 'r-b', 'r-a', 'r-c']);
    expect(every.pages).toBe(3);
    expect(
      (await allPages<EventItem>('/v1/migration-alert-events?type=skipped', 1)).items.map((e) => e.ruleName),
    ).toEqual(['r-c', 'r-a']);
    const one = await allPages<EventItem>('/v1/migration-alerts/r-c/events', 1);
    expect(one.items.map((e) => e.action)).toEqual(['skipped', 'migrating']);
    const sinceRule = await allPages<EventItem>(
      `/v1/migration-alert-events?rule=r-c&since=${encodeURIComponent('2030-01-01T00:00:02Z')}`,
      1,
    );
    expect(sinceRule.items.map((e) => e.action)).toEqual(['skipped']);
    await expect400('/v1/migration-alert-events?since=2030-13-01', 'since');
    await expect400('/v1/migration-alerts/r-c/events?limit=1001', 'limit');
  });

  it('pages the migration policies by name', async () => {
    for (const name of ['p-c', 'p-a', 'p-b']) {
      const made = await stack.api('POST', '/v1/migration-policies', {
        name,
        selectors: { guestLabels: { tier: name } },
        convergence: 'minimal-downtime',
      });
      expect(made.status).toBe(201);
    }
    const all = await allPages<{ name: string }>('/v1/migration-policies', 2);
    expect(names(all.items)).toEqual(['p-a', 'p-b', 'p-c']);
    expect(all.pages).toBe(2);
    await expect400(
      `/v1/migration-policies?cursor=${encodeCursor('tokens', { sort: 'x', id: 'y' })}`,
      'cursor',
    );
  });

  it('pages the tokens oldest first, filtered on role and revoked', async () => {
    for (const [name, role] of [
      ['t-1', 'viewer'],
      ['t-2', 'operator'],
      ['t-3', 'viewer'],
      ['t-4', 'admin'],
      ['t-5', 'viewer'],
    ] as const) {
      expect((await stack.api('POST', '/v1/tokens', { name, role })).status).toBe(201);
    }
    expect((await stack.api('DELETE', '/v1/tokens/t-3')).status).toBe(200);
    const all = await allPages<Named>('/v1/tokens', 2);
    expect(names(all.items)).toEqual(['t-1', 't-2', 't-3', 't-4', 't-5']);
    expect(all.pages).toBe(3);
    expect(names((await allPages<Named>('/v1/tokens?role=viewer', 1)).items)).toEqual(['t-1', 't-3', 't-5']);
    expect(names((await allPages<Named>('/v1/tokens?revoked=true', 1)).items)).toEqual(['t-3']);
    expect(names((await allPages<Named>('/v1/tokens?role=viewer&revoked=false', 1)).items)).toEqual([
      't-1',
      't-5',
    ]);
    await expect400('/v1/tokens?role=root', 'role');
    await expect400('/v1/tokens?revoked=maybe', 'revoked');
  });

  it('vmctl follows the cursors of every list and passes its filters', async () => {
    const vmctl = async (...args: string[]) =>
      (
        await run(process.execPath, [path.resolve('cli/bin.js'), ...args], {
          env: { ...process.env, VMCTL_API_URL: stack.apiUrl, API_TOKEN: stack.apiToken },
        })
      ).stdout;
    const rows = (out: string, pattern: RegExp) => out.split('\n').filter((l) => pattern.test(l));

    expect(rows(await vmctl('host-list', '--status', 'online', '--label', 'zone=z1'), /\blp-/).length).toBe(
      2,
    );
    expect(rows(await vmctl('host-list'), /\blp-/).length).toBe(5);
    expect(
      rows(await vmctl('host-events', '--limit', '3', '--type', 'paging_tied', 'lp-a'), /paging_tied/).length,
    ).toBe(3);
    expect(rows(await vmctl('host-events', 'lp-a'), /paging_/).length).toBe(6);
    expect(rows(await vmctl('monitor-migrationalert-list', '--enabled', 'true'), /\br-[abc]\b/).length).toBe(
      2,
    );
    expect(rows(await vmctl('monitor-migrationalert-event', '--limit', '4'), /\br-[abc]\b/).length).toBe(4);
    expect(rows(await vmctl('migration-policy-list'), /\bp-[abc]\b/).length).toBe(3);
    expect(rows(await vmctl('token-list', '--role', 'viewer', '--revoked', 'false'), /\bt-\d\b/).length).toBe(
      2,
    );
  });
});
