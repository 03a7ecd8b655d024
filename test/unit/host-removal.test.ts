import { describe, expect, it } from 'vitest';
import {
  describeHostRemovalBlockers,
  hostRemovalBlockers,
  type HostRemovalFacts,
} from '../../domain/host-removal.ts';

const HOST = { id: 'h-1', name: 'host-1' };
const OTHER = 'h-2';

const facts = (over: Partial<HostRemovalFacts> = {}): HostRemovalFacts => ({
  host: HOST,
  online: false,
  guests: [],
  migrations: [],
  alertRules: [],
  ...over,
});

const migration = (phase: string, sourceHostId: string, destinationHostId: string | null) => ({
  id: `m-${phase}`,
  phase,
  guestName: 'web-1',
  sourceHostId,
  destinationHostId,
});

describe('hostRemovalBlockers', () => {
  it('lets an offline, empty host go, whatever its finished migrations', () => {
    const history = [migration('completed', HOST.id, OTHER), migration('failed', OTHER, HOST.id)];
    expect(hostRemovalBlockers(facts({ migrations: history }))).toEqual([]);
  });

  it('refuses an online host: its agent would register it again', () => {
    expect(hostRemovalBlockers(facts({ online: true }))).toEqual([{ kind: 'online' }]);
  });

  it('names the guests still assigned to it', () => {
    const guests = [
      { id: 'g-1', name: 'web-1' },
      { id: 'g-2', name: 'db-1' },
    ];
    expect(hostRemovalBlockers(facts({ guests }))).toEqual([{ kind: 'guests', guests: ['web-1', 'db-1'] }]);
  });

  it('names the active migrations from or to it, and ignores those of other hosts', () => {
    const migrations = [
      migration('copying', HOST.id, OTHER),
      migration('queued', OTHER, HOST.id),
      migration('pending', OTHER, 'h-3'),
    ];
    expect(hostRemovalBlockers(facts({ migrations }))).toEqual([
      {
        kind: 'active_migrations',
        migrations: [
          { id: 'm-copying', guest: 'web-1' },
          { id: 'm-queued', guest: 'web-1' },
        ],
      },
    ]);
  });

  it('names the alert rules watching it or moving guests to it, not the others', () => {
    const alertRules = [
      { name: 'hot-source', sourceHostIds: [HOST.id], targetHostIds: [] },
      { name: 'as-target', sourceHostIds: [OTHER], targetHostIds: [HOST.id] },
      { name: 'every-host', sourceHostIds: [], targetHostIds: [] },
    ];
    expect(hostRemovalBlockers(facts({ alertRules }))).toEqual([
      { kind: 'alert_rules', rules: ['hot-source', 'as-target'] },
    ]);
  });

  it('lists every blocker at once, each with what to do in the message', () => {
    const blockers = hostRemovalBlockers(
      facts({
        online: true,
        guests: [{ id: 'g-1', name: 'web-1' }],
        migrations: [migration('copying', HOST.id, OTHER)],
        alertRules: [{ name: 'hot', sourceHostIds: [HOST.id], targetHostIds: [] }],
      }),
    );
    expect(blockers.map((b) => b.kind)).toEqual(['online', 'active_migrations', 'guests', 'alert_rules']);
    const message = describeHostRemovalBlockers(HOST.name, blockers);
    expect(message).toMatch(/^host host-1 cannot be removed: /);
    expect(message).toContain('stop the agent first');
    expect(message).toContain('m-copying of web-1');
    expect(message).toContain('guests are assigned to it (web-1)');
    expect(message).toContain('vmctl host-maintenance-enter host-1');
    expect(message).toContain('alert rules name it as a source or target host (hot)');
  });
});
