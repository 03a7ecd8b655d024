import { describe, expect, it } from 'vitest';
import { ovirtSchedules } from '../../domain/convergence/schedule.ts';
import {
  DEFAULT_MIGRATION_CONFIG,
  MigrationSettingsError,
  migrationOverrideFields,
} from '../../domain/migration-config.ts';
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

/** A policy from the API; selectors default to {} (every guest) here, the API itself requires them. */
function policy(name: string, overrides: Partial<MigrationPolicy> = {}): MigrationPolicy {
  return policyFromRequest({ name, selectors: {}, ...overrides });
}

/** A policy as stored before the cluster-wide overrides were refused: the API no longer builds one. */
function legacyPolicy(name: string, overrides: Record<string, unknown>): MigrationPolicy {
  return { ...policy(name), overrides } as unknown as MigrationPolicy;
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
  it('fills the defaults: empty label maps, no overrides, predictive, auto bandwidth, encryption left to the default', () => {
    expect(policyFromRequest({ name: 'p', selectors: {} })).toEqual({
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
      selectors: {},
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
    [{ name: 'p', encryption: 'yes' }, 'encryption', /true or false/],
    [
      { name: 'p', overrides: { bandwidthPerMigration: '64MB' } },
      'overrides.bandwidthPerMigration',
      /quantity/,
    ],
    [
      { name: 'p', overrides: { completionTimeoutPerGiB: -1 } },
      'overrides.completionTimeoutPerGiB',
      /at least 0/,
    ],
    [{ name: 'p' }, 'selectors', /required \(as in KubeVirt\).*\{\} selects every guest/],
    [{ name: 'p', selectors: null }, 'selectors', /object/],
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
    const parsed: MigrationPolicy = migrationPolicySchema.parse({ name: 'x', selectors: {} });
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
        matches: true,
        matchedLabels: 0,
        matchedGuestLabels: 0,
        matchedProjectLabels: 0,
        detail: 'empty selectors: matches every guest, at the lowest precedence (0 labels)',
      },
      {
        name: 'hpc-production',
        matches: true,
        matchedLabels: 2,
        matchedGuestLabels: 1,
        matchedProjectLabels: 1,
        detail: 'matches 2 labels: guest environment=production, project hpc-workloads=True',
      },
      {
        name: 'large',
        matches: false,
        matchedLabels: 0,
        matchedGuestLabels: 0,
        matchedProjectLabels: 0,
        detail: 'does not match: guest label size=large required, the guest has size=small',
      },
      {
        name: 'production',
        matches: true,
        matchedLabels: 1,
        matchedGuestLabels: 1,
        matchedProjectLabels: 0,
        detail: 'matches 1 label: guest environment=production',
      },
    ]);
    expect(result.explanation).toEqual([
      'catch-all: empty selectors: matches every guest, at the lowest precedence (0 labels)',
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

  it('a policy with empty selectors matches every guest, labelled or not, at the lowest precedence', () => {
    const bare = selectPolicy([everything], {}, {});
    expect(bare.policy?.name).toBe('catch-all');
    expect(bare.explanation).toEqual([
      'catch-all: empty selectors: matches every guest, at the lowest precedence (0 labels)',
      'selected catch-all: only policies with empty selectors match: it is the catch-all',
    ]);
    expect(selectPolicy([everything, large], { size: 'small' }, { team: 'x' }).policy?.name).toBe(
      'catch-all',
    );
    // Any policy matching one label beats it, whatever the names.
    const aaa = policy('aaa', {});
    expect(selectPolicy([aaa, production], { environment: 'production' }, {}).policy?.name).toBe(
      'production',
    );
  });

  it('ties go to the name that sorts first, whatever the order given', () => {
    const b = policy('beta', { selectors: { guestLabels: { tier: 'web' }, projectLabels: {} } });
    // One project label: the same total, but KubeVirt ranks guest (VMI) labels above project ones.
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
        'selected Gamma: Gamma, beta tie at 1 matching label (1 guest, 0 project), the first name in alphabetical order wins',
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
      overrides: { completionTimeoutPerGiB: 60, allowPostCopy: true },
      bandwidth: { mode: 'hypervisor-default' },
    });
    const s = resolveSettings(config, p);
    expect(s.completionTimeoutPerGiB).toBe(60);
    expect(s.allowPostCopy).toBe(true);
    expect(s.sources.completionTimeoutPerGiB).toBe('policy:fast');
    expect(s.sources.allowPostCopy).toBe('policy:fast');
    expect(s.sources.maxDowntimeMs).toBe('cluster-default');
    expect(s.sources.progressTimeout).toBe('cluster-default');
    expect(s.sources.convergence).toBe('policy:fast');
    expect(s.convergencePolicy).toMatchObject({ kind: 'predictive', progressTimeoutSeconds: 150 });
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

  it('TLS is on by default; only a policy turns it off, explicitly or by its large-vms type (oVirt below)', () => {
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
      "tls: off, as oVirt's 'Very large VMs' policy does: its migration need not be encrypted (encryption: true turns TLS back on)",
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
      completionTimeoutPerGiB: 150,
    });
  });
});

/**
 * Written from KubeVirt's source, kubevirt/kubevirt (main, 2026-08):
 * - pkg/virt-controller/watch/migration/migrationpolicy.go, matchPolicy / countMatchingLabels /
 *   migrationPolicyMatchScore.greaterThan: a policy matches when every label of its selectors is on the VMI
 *   (virtualMachineInstanceSelector) and its namespace (namespaceSelector); "the policy that matches the VMI
 *   and specifies the most labels that matched" wins; on equal totals, `score.matchingVMILabels >
 *   otherScore.matchingVMILabels`; "If two policies are matched and have the same level of details ... the
 *   matched policy is chosen by policies' names ordered by lexicographic order".
 * - the table mirrors pkg/virt-controller/watch/migration/migration_test.go, "Migration policy / matching and
 *   precedence" (policyInfo{name, vmiMatchingLabels, namespaceMatchingLabels}).
 * - empty vs absent: countMatchingLabels returns no match only when `policy.Spec.Selectors == nil`; empty
 *   selector maps count 0 labels and match, and matchPolicy's best score starts at {0, 0}, so such a policy
 *   is selected only when nothing more specific matches. The CRD (staging/src/kubevirt.io/api/migrations/
 *   v1alpha1/types.go, MigrationPolicySpec.Selectors, `json:"selectors"`; required in the generated schema)
 *   requires `selectors`: ours does too, so `{}` is always a deliberate catch-all.
 * - not copied: KubeVirt skips a selector when the VMI's label map is nil (and gates the namespace check on
 *   the VMI's labels too), so a VMI without any label matches every policy; our guests always have a label
 *   object, and an unlabelled guest fails every non-empty selector.
 */
describe("selectPolicy: KubeVirt's precedence, from its source", () => {
  /** A policy with `guest` VMI labels and `project` namespace labels, all of them on the guest / project. */
  function scored(name: string, guest: number, project: number) {
    const keys = (kind: string, n: number) =>
      Object.fromEntries(Array.from({ length: n }, (_, i) => [`${name}-${kind}-key-${i}`, 'v']));
    return policy(name, {
      selectors: { guestLabels: keys('vmi', guest), projectLabels: keys('ns', project) },
    });
  }
  function labelsOf(policies: MigrationPolicy[]) {
    return {
      guest: Object.assign({}, ...policies.map((p) => p.selectors.guestLabels)) as Record<string, string>,
      project: Object.assign({}, ...policies.map((p) => p.selectors.projectLabels)) as Record<string, string>,
    };
  }

  it.each([
    // KubeVirt's own entries.
    ['only one policy should be matched', 'one', [['one', 1, 4]]],
    [
      'most detail policy should be matched',
      'two',
      [
        ['one', 1, 4],
        ['two', 4, 2],
      ],
    ],
    [
      'same level of detail: first name in lexicographic order (1)',
      'aa',
      [
        ['aa', 2, 2],
        ['zz', 2, 2],
      ],
    ],
    [
      'same level of detail: first name in lexicographic order (2)',
      'aa',
      [
        ['zz', 2, 2],
        ['aa', 2, 2],
      ],
    ],
    [
      'VMI labels have precedence over namespace labels (same count)',
      'z-vmi',
      [
        ['a-ns', 0, 3],
        ['z-vmi', 3, 0],
      ],
    ],
    // From greaterThan: equal totals rank by VMI labels, only then by name.
    [
      'equal totals: more guest labels wins over the name',
      'c',
      [
        ['b', 2, 2],
        ['c', 3, 1],
      ],
    ],
    [
      'equal totals: 1 guest + 1 project loses to 2 guest',
      'z',
      [
        ['a', 1, 1],
        ['z', 2, 0],
      ],
    ],
    [
      'a higher total wins even with fewer guest labels',
      'a',
      [
        ['a', 0, 5],
        ['b', 4, 0],
      ],
    ],
    // Empty selectors: score {0, 0}, the lowest.
    [
      'empty selectors lose to any matching label',
      'z',
      [
        ['a', 0, 0],
        ['z', 0, 1],
      ],
    ],
    ['empty selectors alone: selected', 'only', [['only', 0, 0]]],
    [
      'two empty selectors: the name',
      'a',
      [
        ['b', 0, 0],
        ['a', 0, 0],
      ],
    ],
  ] as const)('%s: %s', (_rule, winner, defs) => {
    const policies = defs.map(([name, guest, project]) => scored(name, guest, project));
    const { guest, project } = labelsOf(policies);
    expect(selectPolicy(policies, guest, project).policy?.name).toBe(winner);
    expect(selectPolicy([...policies].reverse(), guest, project).policy?.name).toBe(winner);
  });

  it('a policy with one non-fitting label does not match (KubeVirt: "policy with one non-fitting label should not match")', () => {
    const p = scored('p', 4, 3);
    const { guest, project } = labelsOf([p]);
    expect(selectPolicy([p], { ...guest, 'p-vmi-key-0': 'XYZ' }, project).policy).toBeNull();
    expect(selectPolicy([], guest, project).policy).toBeNull();
  });

  it('the explanation says when guest labels broke a tie', () => {
    const policies = [scored('a', 1, 1), scored('z', 2, 0)];
    const { guest, project } = labelsOf(policies);
    expect(selectPolicy(policies, guest, project).explanation.at(-1)).toBe(
      'selected z: a, z tie at 2 matching labels; it matches the most guest labels (2), which KubeVirt ranks above project labels',
    );
  });
});

/**
 * KubeVirt's MigrationPolicySpec (kubevirt/kubevirt staging/src/kubevirt.io/api/migrations/v1alpha1/types.go)
 * holds allowAutoConverge, bandwidthPerMigration, completionTimeoutPerGiB, maxDowntimeMs, allowPostCopy and
 * allowWorkloadDisruption (plus the experimental options); applyMigrationPolicySpec
 * (pkg/virt-controller/watch/migration/migrationpolicy.go) merges exactly those onto the cluster's
 * configuration. parallelMigrationsPerCluster, parallelOutboundMigrationsPerNode,
 * parallelInboundMigrationsPerNode and progressTimeout are MigrationConfiguration (cluster) fields only.
 */
describe("policy overrides: what KubeVirt's MigrationPolicySpec can override", () => {
  it("are exactly KubeVirt's MigrationPolicySpec fields (maxDowntimeMs included)", () => {
    expect([...migrationOverrideFields].sort()).toEqual(
      [
        'allowAutoConverge',
        'bandwidthPerMigration',
        'completionTimeoutPerGiB',
        'maxDowntimeMs',
        'allowPostCopy',
        'allowWorkloadDisruption',
      ].sort(),
    );
    const p = policy('all', {
      overrides: {
        allowAutoConverge: true,
        bandwidthPerMigration: '64Mi',
        completionTimeoutPerGiB: 800,
        maxDowntimeMs: 900,
        allowPostCopy: true,
        allowWorkloadDisruption: false,
      } as unknown as MigrationPolicy['overrides'],
    });
    expect(p.overrides).toEqual({
      allowAutoConverge: true,
      bandwidthPerMigration: 64 * MiB,
      completionTimeoutPerGiB: 800,
      maxDowntimeMs: 900,
      allowPostCopy: true,
      allowWorkloadDisruption: false,
    });
  });

  it.each([
    ['parallelMigrationsPerCluster', 1],
    ['parallelOutboundMigrationsPerNode', 4],
    ['parallelInboundMigrationsPerNode', 4],
    ['progressTimeout', 60],
    ['queueTimeout', 7200],
    ['resiliencePolicy', 'none'],
  ])('a policy naming the cluster-wide %s is a 400 naming overrides.%s', (field, value) => {
    const err = rejection({ name: 'p', selectors: {}, overrides: { [field]: value } });
    expect(err.field).toBe(`overrides.${field}`);
    expect(err.message).toBe(
      `overrides.${field}: ${field} is cluster-wide: a policy cannot override it; set it in the cluster migration config (PUT /v1/migration-config)`,
    );
  });

  it('a stored policy that still names them loads; resolveSettings keeps the cluster values and says each was ignored', () => {
    const cluster = {
      ...DEFAULT_MIGRATION_CONFIG,
      parallelMigrationsPerCluster: 5,
      parallelOutboundMigrationsPerNode: 2,
      progressTimeout: 150,
    };
    const stored = legacyPolicy('old', {
      parallelMigrationsPerCluster: 1,
      parallelOutboundMigrationsPerNode: 8,
      parallelInboundMigrationsPerNode: 8,
      progressTimeout: 10,
      queueTimeout: 7200,
      resiliencePolicy: 'none',
      maxDowntimeMs: 900,
    });
    expect(selectPolicy([stored], {}, {}).policy?.name).toBe('old');
    const s = resolveSettings(cluster, stored, 10_000);
    expect(s).toMatchObject({
      parallelMigrationsPerCluster: 5,
      parallelOutboundMigrationsPerNode: 2,
      parallelInboundMigrationsPerNode: 2,
      progressTimeout: 150,
      queueTimeout: 3600,
      resiliencePolicy: 'all',
      maxDowntimeMs: 900,
    });
    for (const field of [
      'parallelMigrationsPerCluster',
      'parallelOutboundMigrationsPerNode',
      'parallelInboundMigrationsPerNode',
      'progressTimeout',
      'queueTimeout',
      'resiliencePolicy',
    ] as const) {
      expect(s.sources[field]).toBe('cluster-default');
    }
    expect(s.sources.maxDowntimeMs).toBe('policy:old');
    // The convergence engine's progress timeout and the auto bandwidth share are the cluster's too.
    expect(s.convergencePolicy).toMatchObject({ kind: 'predictive', progressTimeoutSeconds: 150 });
    expect(s.bandwidthBytes).toBe(562_500_000);
    expect(s.notes).toContain(
      'overrides.parallelMigrationsPerCluster: 1 ignored, parallelMigrationsPerCluster is cluster-wide: a policy cannot override it; ' +
        "set it in the cluster migration config (PUT /v1/migration-config); the cluster's 5 applies",
    );
    expect(s.notes.filter((n) => / ignored, /.test(n))).toHaveLength(6);
  });
});

/**
 * KubeVirt: allowWorkloadDisruption "indicates that the migration shouldn't be canceled after
 * acceptableCompletionTime is exceeded. Instead, if permitted, migration will be switched to post-copy or the
 * VMI will be paused" (staging/src/kubevirt.io/api/core/v1/types.go, MigrationConfiguration and
 * VMIMConfigurationOptions). Left unset it follows allowPostCopy: in the cluster config
 * (pkg/virt-config/virt-config.go, ClusterConfig.GetMigrationConfiguration: "AllowWorkloadDisruption will
 * follow the value of AllowPostCopy, if not explicitly set") and in a policy
 * (pkg/virt-controller/watch/migration/migrationpolicy.go, applyMigrationPolicySpec: "if the policy specifies
 * AllowPostCopy but not AllowWorkloadDisruption, AllowWorkloadDisruption should follow AllowPostCopy"; its
 * test table "backward compatibility shim for AllowWorkloadDisruption").
 */
describe('allowWorkloadDisruption left unset follows allowPostCopy (KubeVirt)', () => {
  const base = { ...DEFAULT_MIGRATION_CONFIG };

  it.each([
    [false, undefined, false, true],
    [true, undefined, true, true],
    [true, false, false, false],
    [false, true, true, false],
  ])(
    'cluster allowPostCopy %s, allowWorkloadDisruption %s: %s (followed: %s)',
    (allowPostCopy, allowWorkloadDisruption, expected, followed) => {
      const s = resolveSettings({ ...base, allowPostCopy, allowWorkloadDisruption }, null);
      expect(s.allowWorkloadDisruption).toBe(expected);
      expect(s.sources.allowWorkloadDisruption).toBe('cluster-default');
      expect(
        s.notes.includes(
          `allowWorkloadDisruption: ${expected ? 'on' : 'off'}, following the cluster's allowPostCopy (unset in the cluster config)`,
        ),
      ).toBe(followed);
    },
  );

  it.each([
    // [cluster, policy overrides, allowWorkloadDisruption, its source]
    ['post-copy on, pausing unset', { allowPostCopy: true }, { allowPostCopy: false }, false, 'policy:p'],
    ['pausing explicitly on', { allowWorkloadDisruption: true }, { allowPostCopy: false }, false, 'policy:p'],
    ['pausing explicitly off', { allowWorkloadDisruption: false }, { allowPostCopy: true }, true, 'policy:p'],
    ['pausing off', {}, { allowPostCopy: true, allowWorkloadDisruption: false }, false, 'policy:p'],
    ['post-copy off', {}, { allowWorkloadDisruption: true }, true, 'policy:p'],
    ['post-copy on, pausing unset', { allowPostCopy: true }, {}, true, 'cluster-default'],
    ['pausing explicitly on', { allowWorkloadDisruption: true }, {}, true, 'cluster-default'],
  ] as const)('cluster %s, policy %j: %s from %s', (_c, cluster, overrides, expected, source) => {
    const config = { ...base, ...cluster };
    const s = resolveSettings(config, policy('p', { overrides }));
    expect(s.allowWorkloadDisruption).toBe(expected);
    expect(s.sources.allowWorkloadDisruption).toBe(source);
    expect(startContextFor(s, { memoryBytes: MiB, localDiskBytes: 0 }).pauseAllowed).toBe(expected);
  });

  it("says when it followed the policy's allowPostCopy", () => {
    const s = resolveSettings(base, policy('p', { overrides: { allowPostCopy: false } }));
    expect(s.notes).toContain(
      "allowWorkloadDisruption: off, following the policy's allowPostCopy (the policy leaves it unset)",
    );
  });

  it("follows only an explicit allowPostCopy, as KubeVirt's spec.AllowPostCopy: not the 'post-copy' type's", () => {
    const s = resolveSettings(base, policy('pc', { convergence: 'post-copy' }));
    expect([s.allowPostCopy, s.allowWorkloadDisruption]).toEqual([true, false]);
  });

  it('a legacy stored config row (an explicit false) keeps it; a row without the field follows', () => {
    const legacy = { ...DEFAULT_MIGRATION_CONFIG, allowPostCopy: true, allowWorkloadDisruption: false };
    expect(resolveSettings(legacy, null).allowWorkloadDisruption).toBe(false);
    const unset = { ...DEFAULT_MIGRATION_CONFIG, allowPostCopy: true };
    expect(resolveSettings(unset, null).allowWorkloadDisruption).toBe(true);
  });
});

/**
 * oVirt, oVirt/ovirt-engine (master, 2026-08):
 * - packaging/dbscripts/upgrade/pre_upgrade/0000_config.sql ("Add Very large VMs migration policy"): the
 *   MigrationPolicies entry "Very large VMs" is the one with `"zeroCopy":true`.
 * - frontend/webadmin/modules/uicompat/src/main/resources/org/ovirt/engine/ui/uicompat/
 *   LocalizedMigrationPolicies.properties: "a possibly risky migration mechanism is accepted and the migration
 *   need not be encrypted".
 * - backend/manager/modules/bll/src/main/java/org/ovirt/engine/core/bll/MigrateVmCommand.java,
 *   createMigrateVDSCommandParameters: zero-copy is used only `&& !migrateEncrypted`; an encrypted migration
 *   under that policy is not refused, it just goes without zero-copy (the VM's or cluster's encryption
 *   setting, VmHandler.getMigrateEncrypted, wins).
 * So: 'large-vms' turns TLS off when the policy says nothing, and an explicit encryption wins either way.
 */
describe("'large-vms' and encryption, as oVirt's 'Very large VMs' policy", () => {
  it.each([
    [undefined, false, 'policy:big'],
    [true, true, 'policy:big'],
    [false, false, 'policy:big'],
  ])('encryption %s: TLS %s from %s', (encryption, tls, source) => {
    const p = policyFromRequest({ name: 'big', selectors: {}, convergence: 'large-vms', encryption });
    const s = resolveSettings(DEFAULT_MIGRATION_CONFIG, p);
    expect([s.tls, s.sources.tls]).toEqual([tls, source]);
  });

  it('encryption: true is accepted with it, and the note says oVirt gives up zero-copy then', () => {
    const p = policyFromRequest({ name: 'big', selectors: {}, convergence: 'large-vms', encryption: true });
    expect(resolveSettings(DEFAULT_MIGRATION_CONFIG, p).notes).toContain(
      "tls: on, as the policy asks, with the 'large-vms' type (oVirt encrypts it too and gives up zero-copy, which this engine does not use)",
    );
  });

  it.each(['minimal-downtime', 'post-copy', 'suspend-workload', 'predictive'] as const)(
    "the other types ('%s') leave TLS at the default",
    (convergence) => {
      const s = resolveSettings(DEFAULT_MIGRATION_CONFIG, policy('p', { convergence }));
      expect([s.tls, s.sources.tls]).toEqual([true, 'cluster-default']);
    },
  );
});
