import { z } from 'zod';
import {
  alertMetrics,
  DEFAULT_ALERT_PERIOD_S,
  parseMetricCondition,
  parsePeriod,
  parseThreshold,
  type AlertMetric,
  type Parsed,
} from './alert-rule.ts';

/**
 * `POST /v1/migration-alerts` and `PATCH /v1/migration-alerts/:id` bodies: shapes and units checked here; the
 * API resolves host and guest names against the inventory. Errors name the field and what was expected.
 */

const names = z.array(z.string().min(1)).max(10_000);

const ruleFields = {
  /** `cpu.usage_active` or `mem.available`, or the seed's `cpu.usage_active.gt` / `mem.available.lt`. */
  metric: z.string(),
  /** Percent for cpu; bytes or a size such as `2GiB` for memory. */
  threshold: z.union([z.number(), z.string()]),
  /** `5m`, `2m`, `30s` or seconds. */
  period: z.union([z.number(), z.string()]).optional(),
  source_hosts: names.optional(),
  target_hosts: names.optional(),
  source_guests: names.optional(),
  enabled: z.boolean().optional(),
  margin: z.number().min(0).max(0.5).optional(),
  /** Seconds (or `15m`) during which a guest a rule moved stays put; default three periods. */
  cooldown: z.union([z.number(), z.string()]).optional(),
};

export const createAlertRuleSchema = z
  .object({
    name: z
      .string()
      .regex(
        /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/,
        'expected 1–63 letters, digits, _ . - (it names the Temporal Schedule)',
      ),
    ...ruleFields,
  })
  .strict();

export const updateAlertRuleSchema = z.object(ruleFields).partial().strict();

export interface AlertRuleSettings {
  metric: AlertMetric;
  threshold: number;
  periodS: number;
  margin: number | null;
  cooldownS: number | null;
  enabled: boolean;
}

export class AlertRuleError extends Error {
  constructor(
    readonly field: string,
    message: string,
  ) {
    super(`${field}: ${message}`);
  }
}

function orThrow<T>(field: string, parsed: Parsed<T>): T {
  if (!parsed.ok) throw new AlertRuleError(field, parsed.error);
  return parsed.value;
}

/** Accepts the plain metric or the seed's metric-and-comparator word. */
export function parseMetric(text: string): AlertMetric {
  const plain = alertMetrics.find((m) => m === text);
  return plain ?? orThrow('metric', parseMetricCondition(text));
}

/** The settings of a new rule, or of a rule after a patch (`current` holds what the patch leaves out). */
export function alertRuleSettings(
  body: Partial<z.infer<typeof updateAlertRuleSchema>>,
  current?: AlertRuleSettings,
): AlertRuleSettings {
  const metric = body.metric !== undefined ? parseMetric(body.metric) : current?.metric;
  if (!metric) throw new AlertRuleError('metric', 'required');
  if (body.threshold === undefined && (!current || metric !== current.metric)) {
    throw new AlertRuleError('threshold', `required${current ? ' when the metric changes' : ''}`);
  }
  const threshold =
    body.threshold !== undefined
      ? orThrow('threshold', parseThreshold(metric, body.threshold))
      : current!.threshold;
  const periodS =
    body.period !== undefined
      ? orThrow('period', parsePeriod(body.period))
      : (current?.periodS ?? DEFAULT_ALERT_PERIOD_S);
  const cooldownS =
    body.cooldown !== undefined
      ? orThrow('cooldown', parseCooldown(body.cooldown))
      : (current?.cooldownS ?? null);
  return {
    metric,
    threshold,
    periodS,
    margin: body.margin ?? current?.margin ?? null,
    cooldownS,
    enabled: body.enabled ?? current?.enabled ?? true,
  };
}

function parseCooldown(value: number | string): Parsed<number> {
  if (value === 0 || value === '0') return { ok: true, value: 0 };
  return parsePeriod(value);
}
