import { describe, expect, it } from 'vitest';
import { affinityGroupOf, affinityLabels, sharesAffinity } from '../../domain/affinity.ts';

describe('affinity labels', () => {
  it('are the labels under the affinity. prefix', () => {
    expect(affinityLabels({ 'affinity.app': 'db', env: 'prod' })).toEqual({ 'affinity.app': 'db' });
  });

  it('match when the other guest carries every affinity label with the same value', () => {
    expect(sharesAffinity({ 'affinity.app': 'db' }, { 'affinity.app': 'db', other: 'x' })).toBe(true);
    expect(sharesAffinity({ 'affinity.app': 'db' }, { 'affinity.app': 'web' })).toBe(false);
    expect(sharesAffinity({ 'affinity.app': 'db', 'affinity.zone': 'a' }, { 'affinity.app': 'db' })).toBe(
      false,
    );
  });

  it('never groups on a guest without affinity labels, nor includes the guest itself', () => {
    expect(sharesAffinity({ env: 'prod' }, { env: 'prod' })).toBe(false);
    const a = { id: 'a', labels: { 'affinity.app': 'db' } };
    const b = { id: 'b', labels: { 'affinity.app': 'db' } };
    const c = { id: 'c', labels: { 'affinity.app': 'web' } };
    expect(affinityGroupOf(a, [a, b, c]).map((g) => g.id)).toEqual(['b']);
  });
});
