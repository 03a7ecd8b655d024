import { z } from 'zod';
import { alertMetrics } from './alert-rule.ts';
import type { AlertPlan, AlertPlanInput } from './alert-planner.ts';

/**
 * The planner's input and output as JSON documents (docs/alert-planning.md): what `vmctl plan --snapshot`
 * reads and prints, and what `POST /v1/migration-alerts/:id/plan` answers.
 */

const isoTime = z.string().refine((s) => !Number.isNaN(Date.parse(s)), 'expected an ISO time');

export const alertSnapshotSchema = z.object({
  now: isoTime,
  rule: z.object({
    metric: z.enum(alertMetrics),
    threshold: z.number().positive(),
    period_s: z.number().int().positive(),
    margin: z.number().min(0).max(0.5).optional(),
    cooldown_s: z.number().int().min(0).optional(),
    return_block_s: z.number().int().min(0).optional(),
    source_hosts: z.array(z.string()).optional(),
    target_hosts: z.array(z.string()).optional(),
    source_guests: z.array(z.string()).optional(),
  }),
  hosts: z.array(
    z.object({
      id: z.string().min(1),
      name: z.string().min(1),
      cpus: z.number().int().positive(),
      memory_bytes: z.number().nonnegative(),
      current: z.number().nullable(),
      history: z.array(z.number()).optional(),
      accepts_guests: z.boolean().optional(),
      settling: z.boolean().optional(),
    }),
  ),
  guests: z.array(
    z.object({
      id: z.string().min(1),
      name: z.string().min(1),
      host_id: z.string().min(1),
      vcpus: z.number().int().positive(),
      memory_mb: z.number().int().nonnegative(),
      usage: z.number().nullable(),
      history: z.array(z.number()).default([]),
      last_migrated_at: isoTime.nullable().default(null),
      left_hosts: z.array(z.object({ host: z.string().min(1), at: isoTime })).optional(),
      migrating: z.boolean().optional(),
    }),
  ),
});

export type AlertSnapshot = z.input<typeof alertSnapshotSchema>;

export type SnapshotParse = { ok: true; input: AlertPlanInput } | { ok: false; errors: string[] };

/** Every problem named by its path in the document (`guests[3].host_id: …`). */
export function parseAlertSnapshot(document: unknown): SnapshotParse {
  const parsed = alertSnapshotSchema.safeParse(document);
  if (!parsed.success) {
    return {
      ok: false,
      errors: parsed.error.issues.map((issue) => `${pathOf(issue.path)}: ${issue.message}`),
    };
  }
  const { now, rule, hosts, guests } = parsed.data;
  const hostIds = new Set(hosts.map((h) => h.id));
  const unknownHost = guests.findIndex((g) => !hostIds.has(g.host_id));
  if (unknownHost >= 0) {
    return {
      ok: false,
      errors: [`guests[${unknownHost}].host_id: no host has id '${guests[unknownHost]!.host_id}'`],
    };
  }
  return {
    ok: true,
    input: {
      now,
      rule: {
        metric: rule.metric,
        threshold: rule.threshold,
        periodS: rule.period_s,
        ...(rule.margin !== undefined ? { margin: rule.margin } : {}),
        ...(rule.cooldown_s !== undefined ? { cooldownS: rule.cooldown_s } : {}),
        ...(rule.return_block_s !== undefined ? { returnBlockS: rule.return_block_s } : {}),
        ...(rule.source_hosts ? { sourceHosts: rule.source_hosts } : {}),
        ...(rule.target_hosts ? { targetHosts: rule.target_hosts } : {}),
        ...(rule.source_guests ? { sourceGuests: rule.source_guests } : {}),
      },
      hosts: hosts.map((h) => ({
        id: h.id,
        name: h.name,
        cpus: h.cpus,
        memoryBytes: h.memory_bytes,
        current: h.current,
        ...(h.history !== undefined ? { history: h.history } : {}),
        ...(h.accepts_guests !== undefined ? { acceptsGuests: h.accepts_guests } : {}),
        ...(h.settling !== undefined ? { settling: h.settling } : {}),
      })),
      guests: guests.map((g) => ({
        id: g.id,
        name: g.name,
        hostId: g.host_id,
        vcpus: g.vcpus,
        memoryMb: g.memory_mb,
        usage: g.usage,
        history: g.history,
        lastMigratedAt: g.last_migrated_at,
        ...(g.left_hosts ? { leftHosts: g.left_hosts } : {}),
        ...(g.migrating !== undefined ? { migrating: g.migrating } : {}),
      })),
    },
  };
}

function pathOf(path: PropertyKey[]): string {
  return (
    path.reduce<string>(
      (text, part) =>
        typeof part === 'number' ? `${text}[${part}]` : text ? `${text}.${String(part)}` : String(part),
      '',
    ) || '(document)'
  );
}

export interface AlertPlanDocument {
  moves: { guest: string; from: string; to: string; score: number }[];
  unplaced: { guest: string; reasons: string[] }[];
  host_after: Record<string, number>;
}

/** The plan as the snapshot format's output: guest, from and to are ids. */
export function alertPlanDocument(plan: AlertPlan): AlertPlanDocument {
  return {
    moves: plan.moves.map(({ guest, from, to, score }) => ({ guest, from, to, score })),
    unplaced: plan.unplaced,
    host_after: plan.hostAfter,
  };
}
