import { describe, expect, it } from 'vitest';
import { AlertRuleError, alertRuleSettings } from '../../domain/alert-rule-request.ts';
import {
  fires,
  parseBytes,
  parseMetricCondition,
  parsePeriod,
  parseThreshold,
  safeLine,
} from '../../domain/alert-rule.ts';

const GiB = 1024 ** 3;

describe('alert rule units', () => {
  it.each([
    ['2GiB', 2 * GiB],
    ['512MiB', 512 * 1024 ** 2],
    ['1.5G', 1.5e9],
    ['2147483648', 2147483648],
    ['10 kb', 10_000],
  ])('parses the byte size %s', (text, bytes) => {
    expect(parseBytes(text)).toEqual({ ok: true, value: bytes });
  });

  it.each(['2 potatoes', '', 'GiB', '-1GiB'])('refuses the byte size %j', (text) => {
    expect(parseBytes(text).ok).toBe(false);
  });

  it.each([
    ['2m', 120],
    ['5m', 300],
    ['30s', 30],
    ['1h', 3600],
    [600, 600],
    ['45', 45],
  ] as const)('parses the period %s', (text, seconds) => {
    expect(parsePeriod(text)).toEqual({ ok: true, value: seconds });
  });

  it.each(['5s', '2 fortnights', '1d', 0])('refuses the period %j', (text) => {
    expect(parsePeriod(text).ok).toBe(false);
  });

  it("reads the seed's metric-and-comparator words, and only the right comparator per metric", () => {
    expect(parseMetricCondition('cpu.usage_active.gt')).toEqual({ ok: true, value: 'cpu.usage_active' });
    expect(parseMetricCondition('mem.available.lt')).toEqual({ ok: true, value: 'mem.available' });
    expect(parseMetricCondition('cpu.usage_active.lt').ok).toBe(false);
    expect(parseMetricCondition('mem.available.gt').ok).toBe(false);
  });

  it('takes cpu thresholds as percents and memory thresholds as sizes', () => {
    expect(parseThreshold('cpu.usage_active', '60')).toEqual({ ok: true, value: 60 });
    expect(parseThreshold('cpu.usage_active', 100).ok).toBe(false);
    expect(parseThreshold('cpu.usage_active', 0).ok).toBe(false);
    expect(parseThreshold('mem.available', '2GiB')).toEqual({ ok: true, value: 2 * GiB });
    expect(parseThreshold('mem.available', 0).ok).toBe(false);
  });

  it('compares strictly, as the seed', () => {
    expect(fires('cpu.usage_active', 60.000001, 60)).toBe(true);
    expect(fires('cpu.usage_active', 60, 60)).toBe(false);
    expect(fires('mem.available', GiB - 1, GiB)).toBe(true);
    expect(fires('mem.available', GiB, GiB)).toBe(false);
  });

  it('moves the safe line inside the safe side by the margin', () => {
    expect(safeLine('cpu.usage_active', 80, 0.05)).toBeCloseTo(76);
    expect(safeLine('mem.available', 2 * GiB, 0.5)).toBe(3 * GiB);
  });
});

describe('alert rule bodies', () => {
  it('fills the defaults of a new rule', () => {
    expect(alertRuleSettings({ metric: 'cpu.usage_active.gt', threshold: 60 })).toEqual({
      metric: 'cpu.usage_active',
      threshold: 60,
      periodS: 300,
      margin: null,
      cooldownS: null,
      enabled: true,
    });
  });

  it('keeps what a patch leaves out, and needs a threshold when the metric changes', () => {
    const current = alertRuleSettings({
      metric: 'cpu.usage_active',
      threshold: 60,
      period: '2m',
      cooldown: '15m',
    });
    expect(alertRuleSettings({ enabled: false }, current)).toEqual({ ...current, enabled: false });
    expect(() => alertRuleSettings({ metric: 'mem.available' }, current)).toThrow(AlertRuleError);
    expect(alertRuleSettings({ metric: 'mem.available', threshold: '1GiB' }, current)).toMatchObject({
      metric: 'mem.available',
      threshold: GiB,
      periodS: 120,
      cooldownS: 900,
    });
  });

  it('names the field of every mistake', () => {
    const field = (body: Parameters<typeof alertRuleSettings>[0]) => {
      try {
        alertRuleSettings(body);
        return null;
      } catch (err) {
        return (err as AlertRuleError).field;
      }
    };
    expect(field({ threshold: 60 })).toBe('metric');
    expect(field({ metric: 'cpu.usage_active' })).toBe('threshold');
    expect(field({ metric: 'cpu', threshold: 60 })).toBe('metric');
    expect(field({ metric: 'cpu.usage_active', threshold: 'lots' })).toBe('threshold');
    expect(field({ metric: 'cpu.usage_active', threshold: 60, period: 'soon' })).toBe('period');
    expect(field({ metric: 'cpu.usage_active', threshold: 60, cooldown: 'later' })).toBe('cooldown');
  });
});
