import { describe, expect, it } from 'vitest';
import { mergeLabels } from '../../domain/guest-labels.ts';

describe('mergeLabels', () => {
  it('sets, replaces and removes keys and keeps the others', () => {
    expect(
      mergeLabels({ tier: 'silver', app: 'web', old: 'x' }, { tier: 'gold', zone: 'a', old: null }),
    ).toEqual({
      tier: 'gold',
      app: 'web',
      zone: 'a',
    });
  });

  it('removing a key that is not there changes nothing', () => {
    expect(mergeLabels({ app: 'web' }, { gone: null })).toEqual({ app: 'web' });
  });

  it('an empty patch keeps the labels', () => {
    expect(mergeLabels({ app: 'web' }, {})).toEqual({ app: 'web' });
  });
});
