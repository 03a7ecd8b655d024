import { parseQuantity } from './migration-config.ts';

/**
 * A migration-alert rule as Cloudpods writes it (`cpu.usage_active.gt 60`, `mem.available.lt 2GiB`): the
 * metric, its comparator and threshold, parsed and checked in one place for the API, the CLI and the planner.
 */

export const alertMetrics = ['cpu.usage_active', 'mem.available'] as const;
export type AlertMetric = (typeof alertMetrics)[number];

/** Strict comparison, as the seed: cpu fires above its threshold, free memory below it. */
export const comparatorOf = (metric: AlertMetric): 'gt' | 'lt' =>
  metric === 'cpu.usage_active' ? 'gt' : 'lt';

export const DEFAULT_ALERT_PERIOD_S = 300;
/** A guest moved by any rule is not moved again for this many periods. */
export const DEFAULT_COOLDOWN_PERIODS = 3;
/** The planner aims this fraction of the threshold inside the safe side, so a host does not re-fire at once. */
export const DEFAULT_ALERT_MARGIN = 0.02;

export type Parsed<T> = { ok: true; value: T } | { ok: false; error: string };

/**
 * `2GiB`, `512MiB`, `1.5G`, `2147483648`: a byte count. The Kubernetes quantities the migration config takes
 * (`parseQuantity`), with the `B` people write after them.
 */
export function parseBytes(text: string): Parsed<number> {
  const bytes = parseQuantity(text.trim().replace(/(?<=[\dkKMGTPEi])[bB]$/, ''));
  if (bytes === null) {
    return { ok: false, error: `expected a byte size such as 2147483648, 2GiB or 512MiB, got '${text}'` };
  }
  return { ok: true, value: bytes };
}

/** `2m`, `5m`, `30s`, `1h`, or a number of seconds: the rule's period in seconds (at least 10 s). */
export function parsePeriod(text: string | number): Parsed<number> {
  const match = /^\s*(\d+)\s*(s|m|h)?\s*$/.exec(String(text));
  if (!match) return { ok: false, error: `expected a period such as 30s, 2m or 1h, got '${text}'` };
  const seconds = Number(match[1]) * ({ s: 1, m: 60, h: 3600 }[match[2] ?? 's'] ?? 1);
  if (seconds < 10) return { ok: false, error: `must be at least 10s, got '${text}'` };
  return { ok: true, value: seconds };
}

/** The threshold in the metric's unit: percent (0–100) for cpu, bytes for memory. */
export function parseThreshold(metric: AlertMetric, text: string | number): Parsed<number> {
  if (metric === 'mem.available') {
    const bytes = typeof text === 'number' ? { ok: true as const, value: text } : parseBytes(text);
    if (!bytes.ok) return bytes;
    if (!(bytes.value > 0)) return { ok: false, error: `must be a positive byte size, got '${text}'` };
    return bytes;
  }
  const value = Number(text);
  if (String(text).trim() === '' || !Number.isFinite(value) || value <= 0 || value >= 100) {
    return {
      ok: false,
      error: `cpu.usage_active is a percent: expected a number above 0 and below 100, got '${text}'`,
    };
  }
  return { ok: true, value };
}

/** `cpu.usage_active.gt` / `mem.available.lt`: the seed's metric-and-comparator word. */
export function parseMetricCondition(text: string): Parsed<AlertMetric> {
  const metric = alertMetrics.find((m) => text === `${m}.${comparatorOf(m)}`);
  if (metric) return { ok: true, value: metric };
  const expected = alertMetrics.map((m) => `${m}.${comparatorOf(m)}`).join(' or ');
  return { ok: false, error: `expected ${expected}, got '${text}'` };
}

/** Whether a host's value is past the threshold (strictly). */
export function fires(metric: AlertMetric, value: number, threshold: number): boolean {
  return comparatorOf(metric) === 'gt' ? value > threshold : value < threshold;
}

/** The line the planner aims for: the threshold moved inside the safe side by the margin. */
export function safeLine(metric: AlertMetric, threshold: number, margin: number): number {
  return comparatorOf(metric) === 'gt' ? threshold * (1 - margin) : threshold * (1 + margin);
}
