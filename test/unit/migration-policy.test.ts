import { describe, expect, it } from 'vitest';
import { ovirtSchedules } from '../../domain/convergence/schedule.ts';
import { DEFAULT_MIGRATION_CONFIG, MigrationSettingsError } from '../../domain/migration-config.ts';
import {
  AUTO_BANDWIDTH_LINK_FRACTION,
  migrationPolicySchema,
  policyFromRequest,
  resolvedFields,
  resolveSettings,
  selectPolicy,
  startContextFor,
  type MigrationPolicy,
} from '../../domain/migration-policy.ts';

const MiB = 1024 * 1024;

function policy(name: string, overrides: Partial<MigrationPolicy> = {}): MigrationPolicy {
  return policyFromRequest({ name, ...overrides });
}

function rejection(body: unknown): MigrationSettingsError {
  try {
    policyFromRequest(body);
  } catch (err) {
    if (err instanceof MigrationSettingsError) return err;
    throw err;
  }
  throw new Error(`accepted ${JSON.stringify(body)}`);
}

describe('migration policy schema', () => {
  it('fills the defaults: no selectors, no overrides, predictive, auto bandwidth, encryption left to the default', () => {
    expect(policyFromRequest({ name: 'p' })).toEqual({
      name: 'p',
      selectors: { guestLabels: {}, projectLabels: {} },
      overrides: {},
      convergence: 'predictive',
      bandwidth: { mode: 'auto' },
    });
  });

  it('accepts the KubeVirt seed policy (empty label value included) with overrides', () => {
    const p = policyFromRequest({
      name: 'hpc-production',
      selectors: {
        projectLabels: { 'hpc-workloads': 'True', 'xyz-workloads-type': '' },
        guestLabels: { 'kubevirt.io/environment': 'production' },
      },
      overrides: { bandwidthPerMigration: '2048Mi', completionTimeoutPerGiB: 800, allowPostCopy: true },
      convergence: 'post-copy',
      encryption: true,
    });
    expect(p.selectors.projectLabels).toEqual({ 'hpc-workloads': 'True', 'xyz-workloads-type': '' });
    expect(p.overrides).toEqual({
      bandwidthPerMigration: 2048 * MiB,
      completionTimeoutPerGiB: 800,
      allowPostCopy: true,
    });
  });

  it('accepts an operator schedule', () => {
    const p = policyFromRequest({
      name: 'mine',
      convergence: 'schedule',
      schedule: [
        { afterPass: 0, action: 'set-downtime', downtimeMs: 50 },
        { afterPass: 2, action: 'set-downtime', downtimeMs: 250 },
        { afterPass: 4, action: 'post-copy' },
        { afterPass: 5, action: 'pause' },
        { afterPass: 6, action: 'abort' },
      ],
    });
    expect(p.schedule).toHaveLength(5);
  });

  it.each([
    [{ name: '' }, 'name', /a name of letters/],
    [{ name: 'bad name' }, 'name', /a name of letters/],
    [{}, 'name', /a policy name/],
    [
      { name: 'p', convergence: 'fastest' },
      'convergence',
      /one of minimal-downtime, post-copy, suspend-workload, large-vms, schedule, predictive/,
    ],
    [{ name: 'p', convergence: 'schedule' }, 'schedule', /required when convergence is 'schedule'/],
    [
      { name: 'p', schedule: [{ afterPass: 1, action: 'abort' }] },
      'schedule',
      /only used with convergence 'schedule'/,
    ],
    [{ name: 'p', bandwidth: { mode: 'custom' } }, 'bandwidth.mbps', /required when the mode is 'custom'/],
    [{ name: 'p', bandwidth: { mode: 'auto', mbps: 100 } }, 'bandwidth.mbps', /only with mode 'custom'/],
    [{ name: 'p', bandwidth: { mode: 'custom', mbps: -1 } }, 'bandwidth.mbps', /positive/],
    [{ name: 'p', bandwidth: { mode: 'fast' } }, 'bandwidth.mode', /one of auto, hypervisor-default, custom/],
    [
      { name: 'p', bandwidth: { mode: 'custom', mbps: 100 }, overrides: { bandwidthPerMigration: '1Gi' } },
      'overrides.bandwidthPerMigration',
      /contradicts bandwidth mode 'custom'/,
    ],
    [{ name: 'p', convergence: 'large-vms', encryption: true }, 'encryption', /zero-copy/],
    [{ name: 'p', encryption: 'yes' }, 'encryption', /true or false/],
    [
      { name: 'p', overrides: { bandwidthPerMigration: '64MB' } },
      'overrides.bandwidthPerMigration',
      /quantity/,
    ],
    [{ name: 'p', overrides: { progressTimeout: -1 } }, 'overrides.progressTimeout', /at least 0/],
    [{ name: 'p', overrides: { nope: 1 } }, 'overrides.nope', /unknown field/],
    [{ name: 'p', selectors: { guestLabels: { a: 1 } } }, 'selectors.guestLabels.a', /label value/],
    [{ name: 'p', selectors: { vmLabels: {} } }, 'selectors.vmLabels', /Unrecognized key/],
    [{ name: 'p', colour: 'red' }, 'colour', /Unrecognized key/],
  ])('rejects %j naming %s', (body, field, message) => {
    const err = rejection(body);
    expect(err.field).toBe(field);
    expect(err.message).toMatch(message);
  });

  it.each([
    [[], 'schedule', /at least one step/],
    [
      [
        { afterPass: 3, action: 'set-downtime', downtimeMs: 200 },
        { afterPass: 2, action: 'abort' },
      ],
      'schedule.1.afterPass',
      /pass order/,
    ],
    [[{ afterPass: 0, action: 'abort' }], 'schedule.0.action', /only set-downtime can run before/],
    [
      [
        { afterPass: 0, action: 'set-downtime', downtimeMs: 50 },
        { afterPass: 0, action: 'set-downtime', downtimeMs: 60 },
      ],
      'schedule.1.afterPass',
      /only one initial/,
    ],
    [
      [
        { afterPass: 2, action: 'abort' },
        { afterPass: 3, action: 'post-copy' },
      ],
      'schedule.1',
      /no step can follow an abort/,
    ],
    [[{ afterPass: 1, action: 'set-downtime' }], 'schedule.0.downtimeMs', /milliseconds/],
    [[{ afterPass: 1, action: 'set-downtime', downtimeMs: 0 }], 'schedule.0.downtimeMs', /at least 1 ms/],
    [
      [{ afterPass: 1.5, action: 'abort' }],
      'schedule.0.afterPass',
      /whole number of completed memory passes/,
    ],
    [[{ afterPass: 1, action: 'reboot' }], 'schedule.0.action', /one of 'set-downtime'/],
  ])('rejects the schedule %j naming %s', (schedule, field, message) => {
    const err = rejection({ name: 'p', convergence: 'schedule', schedule });
    expect(err.field).toBe(field);
    expect(err.message).toMatch(message);
  });

  it('the schema output is a MigrationPolicy', () => {
    const parsed: MigrationPolicy = migrationPolicySchema.parse({ name: 'x' });
    expect(parsed.name).toBe('x');
  });
});

describe('selectPolicy (KubeVirt semantics)', () => {
  const production = policy('production', {
    selectors: { guestLabels: { environment: 'production' }, projectLabels: {} },
  });
  const hpcProduction = policy('hpc-production', {
    selectors: { guestLabels: { environment: 'production' }, projectLabels: { 'hpc-workloads': 'True' } },
  });
  const large = policy('large', { selectors: { guestLabels: { size: 'large' }, projectLabels: {} } });
  const everything = policy('catch-all', {});

  it('a policy matches only when every selector label matches; the most labels wins', () => {
    const result = selectPolicy(
      [production, hpcProduction, large, everything],
      { environment: 'production', size: 'small' },
      { 'hpc-workloads': 'True' },
    );
    expect(result.policy?.name).toBe('hpc-production');
    expect(result.candidates).toEqual([
      {
        name: 'catch-all',
        matches: false,
        matchedLabels: 0,
        detail: 'no selectors: a policy without selectors selects no guest',
      },
      {
        name: 'hpc-production',
        matches: true,
        matchedLabels: 2,
        detail: 'matches 2 labels: guest environment=production, project hpc-workloads=True',
      },
      {
        name: 'large',
        matches: false,
        matchedLabels: 0,
        detail: 'does not match: guest label size=large required, the guest has size=small',
      },
      {
        name: 'production',
        matches: true,
        matchedLabels: 1,
        detail: 'matches 1 label: guest environment=production',
      },
    ]);
    expect(result.explanation).toEqual([
      'catch-all: no selectors: a policy without selectors selects no guest',
      'hpc-production: matches 2 labels: guest environment=production, project hpc-workloads=True',
      'large: does not match: guest label size=large required, the guest has size=small',
      'production: matches 1 label: guest environment=production',
      'selected hpc-production: it matches the most labels (2)',
    ]);
  });

  it('a partial match does not match, and the explanation says which label failed and why', () => {
    const result = selectPolicy([hpcProduction], { environment: 'production' }, {});
    expect(result.policy).toBeNull();
    expect(result.explanation).toEqual([
      'hpc-production: does not match: project label hpc-workloads=True required, the project has no label hpc-workloads',
      'no policy matches: the cluster config applies',
    ]);
    expect(result.candidates[0]?.matchedLabels).toBe(1);
  });

  it('guest labels do not satisfy project selectors, nor the other way round', () => {
    expect(
      selectPolicy([hpcProduction], { environment: 'production', 'hpc-workloads': 'True' }, {}).policy,
    ).toBeNull();
    expect(selectPolicy([production], {}, { environment: 'production' }).policy).toBeNull();
  });

  it('values must be equal exactly (case and empty values count)', () => {
    const empty = policy('empty-value', {
      selectors: { guestLabels: {}, projectLabels: { 'xyz-workloads-type': '' } },
    });
    expect(selectPolicy([empty], {}, { 'xyz-workloads-type': '' }).policy?.name).toBe('empty-value');
    expect(selectPolicy([empty], {}, {}).policy).toBeNull();
    expect(selectPolicy([production], { environment: 'Production' }, {}).policy).toBeNull();
  });

  it('a policy with no selectors at all matches nobody, even a guest without labels', () => {
    const result = selectPolicy([everything], {}, {});
    expect(result.policy).toBeNull();
    expect(result.explanation[0]).toBe(
      'catch-all: no selectors: a policy without selectors selects no guest',
    );
  });

  it('ties go to the name that sorts first, whatever the order given', () => {
    const b = policy('beta', { selectors: { guestLabels: { tier: 'web' }, projectLabels: {} } });
    const a = policy('alpha', { selectors: { guestLabels: {}, projectLabels: { team: 'red' } } });
    const c = policy('Gamma', { selectors: { guestLabels: { tier: 'web' }, projectLabels: {} } });
    for (const order of [
      [a, b, c],
      [c, b, a],
      [b, c, a],
    ]) {
      const result = selectPolicy(order, { tier: 'web' }, { team: 'red' });
      // Code-unit order: upper case sorts before lower case, independent of the locale.
      expect(result.policy?.name).toBe('Gamma');
      expect(result.explanation.at(-1)).toBe(
        'selected Gamma: Gamma, alpha, beta tie at 1 matching labels, the first name in alphabetical order wins',
      );
    }
  });

  it('lists all failures of a policy', () => {
    const two = policy('two', { selectors: { guestLabels: { a: '1', b: '2' }, projectLabels: { c: '3' } } });
    const result = selectPolicy([two], { a: '9' }, {});
    expect(result.candidates[0]?.detail).toBe(
      'does not match: guest label a=1 required, the guest has a=9; guest label b=2 required, the guest has no label b; ' +
        'project label c=3 required, the project has no label c',
    );
  });

  it('no policies at all', () => {
    expect(selectPolicy([], { a: 'b' }, {})).toEqual({
      policy: null,
      candidates: [],
      explanation: ['no policies: the cluster config applies'],
    });
  });

  it('does not read inherited properties as labels', () => {
    const proto = policy('proto', { selectors: { guestLabels: { toString: 'x' }, projectLabels: {} } });
    expect(selectPolicy([proto], {}, {}).policy).toBeNull();
  });
});

describe('resolveSettings', () => {
  const config = { ...DEFAULT_MIGRATION_CONFIG, bandwidthPerMigration: 64 * MiB };

  it('without a policy: the cluster config, our predictive convergence, every source cluster-default', () => {
    const s = resolveSettings(config, null, 10_000);
    expect(s).toMatchObject({
      ...config,
      policyName: null,
      convergence: 'predictive',
      bandwidthMode: 'cluster',
      bandwidthBytes: 64 * MiB,
      tls: true,
    });
    expect(s.convergencePolicy).toEqual({
      kind: 'predictive',
      initialDowntimeMs: 100,
      downtimeCeilingMs: 300,
      bandwidthCeilingBytes: null,
      progressTimeoutSeconds: 150,
      minCompletedPasses: 3,
      strikes: 2,
      cooldownPasses: 2,
    });
    expect(Object.keys(s.sources).sort()).toEqual([...resolvedFields].sort());
    expect(new Set(Object.values(s.sources))).toEqual(new Set(['cluster-default']));
  });

  it("a policy's overrides win and are attributed to it; the rest stays cluster-default", () => {
    const p = policy('fast', {
      selectors: { guestLabels: { a: 'b' }, projectLabels: {} },
      overrides: { progressTimeout: 60, allowPostCopy: true },
      bandwidth: { mode: 'hypervisor-default' },
    });
    const s = resolveSettings(config, p);
    expect(s.progressTimeout).toBe(60);
    expect(s.allowPostCopy).toBe(true);
    expect(s.sources.progressTimeout).toBe('policy:fast');
    expect(s.sources.allowPostCopy).toBe('policy:fast');
    expect(s.sources.completionTimeoutPerGiB).toBe('cluster-default');
    expect(s.sources.convergence).toBe('policy:fast');
    expect(s.convergencePolicy).toMatchObject({ kind: 'predictive', progressTimeoutSeconds: 60 });
  });

  it('auto bandwidth: 90% of the host link shared by the outbound slots, capped by the cluster bandwidth', () => {
    const p = policy('auto');
    const uncapped = resolveSettings(DEFAULT_MIGRATION_CONFIG, p, 10_000);
    expect(AUTO_BANDWIDTH_LINK_FRACTION).toBe(0.9);
    // 10 Gbit/s = 1.25e9 B/s; 90% = 1.125e9; / 2 outbound = 562.5e6.
    expect(uncapped.bandwidthBytes).toBe(562_500_000);
    expect(uncapped.bandwidthMode).toBe('auto');
    expect(uncapped.sources.bandwidthBytes).toBe('policy:auto');
    expect(uncapped.notes.join('\n')).toMatch(
      /auto, 90% of the 10000 Mbit\/s link \/ 2 outbound migrations = 562500000 B\/s/,
    );
    // The predictive ladder may raise a lagging migration to the whole usable link.
    expect(uncapped.convergencePolicy).toMatchObject({
      kind: 'predictive',
      bandwidthCeilingBytes: 1_125_000_000,
    });

    const capped = resolveSettings(config, p, 10_000);
    expect(capped.bandwidthBytes).toBe(64 * MiB);
    expect(capped.convergencePolicy).toMatchObject({ bandwidthCeilingBytes: 64 * MiB });

    const four = resolveSettings(
      { ...DEFAULT_MIGRATION_CONFIG, parallelOutboundMigrationsPerNode: 4 },
      p,
      1_000,
    );
    expect(four.bandwidthBytes).toBe(28_125_000);
  });

  it('auto bandwidth without a known link speed falls back to the cluster bandwidth, and says so', () => {
    const s = resolveSettings(config, policy('auto'));
    expect(s.bandwidthBytes).toBe(64 * MiB);
    expect(s.sources.bandwidthBytes).toBe('cluster-default');
    expect(s.notes.join('\n')).toMatch(
      /host link speed is unknown: bandwidthPerMigration 67108864 B\/s applies/,
    );
  });

  it('hypervisor-default is 0 (do not set max-bandwidth); custom is mbps megabits per second', () => {
    const hv = resolveSettings(config, policy('hv', { bandwidth: { mode: 'hypervisor-default' } }), 10_000);
    expect([hv.bandwidthMode, hv.bandwidthBytes]).toEqual(['hypervisor-default', 0]);
    const custom = resolveSettings(config, policy('c', { bandwidth: { mode: 'custom', mbps: 800 } }), 10_000);
    expect([custom.bandwidthMode, custom.bandwidthBytes]).toEqual(['custom', 100_000_000]);
    expect(custom.sources.bandwidthBytes).toBe('policy:c');
  });

  it('TLS is on by default; only a policy turns it off, explicitly or by its large-vms type', () => {
    const none = resolveSettings(config, null);
    expect([none.tls, none.sources.tls]).toEqual([true, 'cluster-default']);
    const silent = resolveSettings(config, policy('silent'));
    expect([silent.tls, silent.sources.tls]).toEqual([true, 'cluster-default']);
    const on = resolveSettings(config, policy('tls', { encryption: true }));
    expect([on.tls, on.sources.tls]).toEqual([true, 'policy:tls']);
    const off = resolveSettings(config, policy('plain', { encryption: false }));
    expect([off.tls, off.sources.tls]).toEqual([false, 'policy:plain']);
    const big = resolveSettings(config, policy('big', { convergence: 'large-vms' }));
    expect([big.tls, big.sources.tls]).toEqual([false, 'policy:big']);
    expect(big.notes).toContain(
      "tls: off, as the 'large-vms' policy type's zero-copy transfer cannot be encrypted",
    );
  });

  it("oVirt types run oVirt's schedules with auto-converge on and the schedule's largest downtime", () => {
    const s = resolveSettings(config, policy('min', { convergence: 'minimal-downtime' }));
    expect(s.convergencePolicy).toEqual(ovirtSchedules['minimal-downtime']);
    expect(s.allowAutoConverge).toBe(true);
    expect(s.sources.allowAutoConverge).toBe('policy:min');
    expect(s.maxDowntimeMs).toBe(500);
    expect(s.sources.maxDowntimeMs).toBe('policy:min');
    expect(resolveSettings(config, policy('big', { convergence: 'large-vms' })).maxDowntimeMs).toBe(5000);
    expect(
      resolveSettings(config, policy('sus', { convergence: 'suspend-workload' })).convergencePolicy,
    ).toMatchObject({
      compression: true,
    });
  });

  it("the 'post-copy' type turns post-copy on unless the policy overrides it", () => {
    const on = resolveSettings(config, policy('pc', { convergence: 'post-copy' }));
    expect(on.allowPostCopy).toBe(true);
    expect(on.sources.allowPostCopy).toBe('policy:pc');
    const off = resolveSettings(
      config,
      policy('pc', { convergence: 'post-copy', overrides: { allowPostCopy: false } }),
    );
    expect(off.allowPostCopy).toBe(false);
  });

  it("an explicit maxDowntimeMs override caps a shipped schedule's downtimes", () => {
    const s = resolveSettings(
      config,
      policy('cap', { convergence: 'large-vms', overrides: { maxDowntimeMs: 800 } }),
    );
    expect(s.maxDowntimeMs).toBe(800);
    expect(
      s.convergencePolicy.kind === 'schedule' &&
        s.convergencePolicy.steps.map((x) => x.action === 'set-downtime' && x.downtimeMs),
    ).toEqual([400, 500, 700, 800, 800, 800, false]);
  });

  it("'schedule' runs the operator's steps, the pass-0 step as the initial downtime", () => {
    const p = policy('mine', {
      convergence: 'schedule',
      schedule: [
        { afterPass: 0, action: 'set-downtime', downtimeMs: 50 },
        { afterPass: 3, action: 'set-downtime', downtimeMs: 900 },
        { afterPass: 5, action: 'abort' },
      ],
    });
    const s = resolveSettings(config, p);
    expect(s.convergencePolicy).toEqual({
      kind: 'schedule',
      name: 'mine',
      initialDowntimeMs: 50,
      steps: [
        { afterPass: 3, action: 'set-downtime', downtimeMs: 900 },
        { afterPass: 5, action: 'abort' },
      ],
      autoConverge: true,
      compression: false,
    });
    expect(s.maxDowntimeMs).toBe(900);
    // No pass-0 step: the schedule starts at the configured maximum downtime.
    const noInitial = resolveSettings(
      config,
      policy('mine2', { convergence: 'schedule', schedule: [{ afterPass: 2, action: 'abort' }] }),
    );
    expect(noInitial.convergencePolicy).toMatchObject({ initialDowntimeMs: 300 });
  });

  it('the predictive policy starts at a third of the maximum downtime', () => {
    const s = resolveSettings(config, policy('p', { overrides: { maxDowntimeMs: 900 } }));
    expect(s.convergencePolicy).toMatchObject({
      kind: 'predictive',
      initialDowntimeMs: 300,
      downtimeCeilingMs: 900,
    });
    const tiny = resolveSettings({ ...config, maxDowntimeMs: 20 }, null);
    expect(tiny.convergencePolicy).toMatchObject({ initialDowntimeMs: 20, downtimeCeilingMs: 20 });
  });

  it('survives a JSON round trip (it is frozen on the migration row)', () => {
    const s = resolveSettings(
      config,
      policy('min', { convergence: 'minimal-downtime', encryption: true }),
      25_000,
    );
    expect(JSON.parse(JSON.stringify(s))).toEqual(s);
  });

  it('startContextFor hands the permissions to the convergence engine', () => {
    const s = resolveSettings(
      { ...config, allowWorkloadDisruption: true },
      policy('pc', { convergence: 'post-copy' }),
    );
    expect(startContextFor(s, { memoryBytes: 1024 * MiB, localDiskBytes: 0 })).toEqual({
      memoryBytes: 1024 * MiB,
      localDiskBytes: 0,
      currentBandwidthBytes: 64 * MiB,
      postCopyAllowed: true,
      pauseAllowed: true,
      autoConvergeAllowed: true,
    });
  });
});
