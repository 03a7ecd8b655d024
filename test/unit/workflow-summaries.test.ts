import { describe, expect, it } from 'vitest';
import {
  alertCycleSummary,
  evacuationSummary,
  groupSummary,
  guestActionSummary,
  hostEventSummary,
  migrationDetails,
  migrationSummary,
} from '../../domain/workflow-summaries.ts';

describe('workflow summaries (the Temporal UI line of each run)', () => {
  it('names the guest, both hosts, the kind and the trigger of a migration', () => {
    expect(
      migrationSummary({
        guest: 'demo-1',
        source: 'host-1',
        destination: 'host-3',
        kind: 'live',
        trigger: 'manual',
      }),
    ).toBe('demo-1: host-1 → host-3, live, manual');
  });

  it.each([undefined, null, ''])('says "any host" while the destination is the scheduler’s (%s)', (d) => {
    expect(
      migrationSummary({ guest: 'db', source: 'h2', destination: d, kind: 'rescue', trigger: 'host-down' }),
    ).toBe('db: h2 → any host, rescue, host-down');
  });

  it('lists a group by its guests and labels', () => {
    expect(groupSummary({ guests: ['a', 'b'], labels: { app: 'web' }, trigger: 'manual' })).toBe(
      '2 guests labelled app=web (a, b): live, manual',
    );
    expect(groupSummary({ guests: ['a'], labels: {}, trigger: 'affinity' })).toBe(
      '1 guest (a): live, affinity',
    );
  });

  it('names guest actions, evacuations, host events and alert cycles', () => {
    expect(guestActionSummary('demo-1', 'create', 'host-1')).toBe('demo-1: create on host-1');
    expect(guestActionSummary('demo-1', 'stop', 'host-2')).toBe('demo-1: stop on host-2');
    expect(evacuationSummary('host-1')).toBe('host-1: evacuate for maintenance');
    expect(hostEventSummary('host-1', 'down')).toBe('host-1: down, rescue its guests');
    expect(hostEventSummary('host-1', 'back')).toBe('host-1: back, reconcile its guests');
    expect(alertCycleSummary('busy', 'cpu.usage_active.gt 60')).toBe(
      'alert rule busy: cpu.usage_active.gt 60',
    );
  });

  it('keeps a details line of the phase, the destination once chosen, and an error', () => {
    expect(migrationDetails({ phase: 'prechecks' })).toBe('prechecks');
    expect(migrationDetails({ phase: 'copying', destination: 'host-3' })).toBe('copying → host-3');
    expect(migrationDetails({ phase: 'failed', destination: 'host-3', error: 'no network' })).toBe(
      'failed → host-3: no network',
    );
  });
});
