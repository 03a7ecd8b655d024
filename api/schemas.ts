import { guestStatuses } from '../domain/guest-status.ts';
import { z } from 'zod';
import { diskSpecSchema, networkSpecSchema } from '../domain/agent-contract.ts';
import { MAX_PAGE_LIMIT } from '../domain/paging.ts';
import { alertMetrics } from '../domain/alert-rule.ts';
import { apiRoles } from '../domain/api-roles.ts';
import { LABEL_FILTER } from '../domain/list-filters.ts';

const labelKey = z.string().min(1).max(63);
const labelValue = z.string().max(63);
const labels = z.record(labelKey, labelValue);

export const hostFactsSchema = z.object({
  hostId: z.uuid(),
  name: z.string().min(1).max(63),
  agentUrl: z.url(),
  address: z.string().min(1),
  migrationAddress: z.string().min(1).nullable().default(null),
  driver: z.enum(['qemu', 'sim']),
  cpuModel: z.string(),
  microcode: z.string(),
  kernel: z.string(),
  qemuVersion: z.string(),
  cpus: z.number().int().positive(),
  memoryMb: z.number().int().positive(),
  freeMemoryMb: z.number().int().min(0),
  networks: z.array(z.string()),
  sharedStoragePath: z.string(),
  migrationLinkMbps: z.number().int().positive().max(10_000_000).optional(),
});

export const createServerSchema = z.object({
  name: z
    .string()
    .regex(/^[a-zA-Z0-9][a-zA-Z0-9._-]{0,62}$/, 'a name of letters, digits, ".", "_" or "-" (at most 63)'),
  host: z.string().min(1, 'a host id or name'),
  vcpus: z.number().int().min(1).max(64).default(1),
  memoryMb: z.number().int().min(64).max(1_048_576).default(256),
  disks: z.array(diskSpecSchema).default([]),
  networks: z.array(networkSpecSchema).default([]),
  labels: labels.default({}),
  project: z.string().min(1).default('default'),
  projectLabels: labels.default({}),
  highlyAvailable: z.boolean().default(false),
  passthroughDevices: z.array(z.string().min(1)).default([]),
  dirtyRateMibs: z.number().int().min(0).max(10_000).default(0),
  fillMb: z.number().int().min(0).default(0),
  diskTest: z.boolean().default(false),
});
export type CreateServerRequest = z.infer<typeof createServerSchema>;

/** The body of PATCH /v1/servers/:id: labels to set (a string) or remove (null); the others stay. */
export const updateServerSchema = z.strictObject({
  labels: z.record(labelKey, labelValue.nullable()),
});

export const serverListQuerySchema = z.object({
  host: z.string().min(1).optional(),
  status: z.enum(guestStatuses).optional(),
  limit: z.coerce.number().int().min(1).max(MAX_PAGE_LIMIT).optional(),
  cursor: z.string().min(1).optional().describe('next_cursor of the previous page'),
});

/** The body of POST /v1/servers/:id/live-migrate: climc's server-live-migrate flags, snake_case. */
export const liveMigrateSchema = z.strictObject({
  prefer_host: z.string().min(1, 'a host id or name').optional(),
  skip_cpu_check: z.boolean().default(false),
  skip_kernel_check: z.boolean().default(false),
  enable_tls: z.boolean().default(false),
  quickly_finish: z.boolean().default(false),
  max_bandwidth_mb: z
    .number()
    .int('a whole number of MB/s')
    .positive('a positive number of MB/s (leave it out for unlimited)')
    .nullable()
    .default(null),
  keep_dest_guest_on_failed: z.boolean().default(false),
  /** Also move every guest carrying this one's affinity labels (keys starting with 'affinity.'). */
  with_same_labels: z.boolean().default(false),
});

/** Every list that pages takes these two (domain/paging.ts); `limit` defaults to DEFAULT_PAGE_LIMIT. */
const pageQuery = {
  limit: z.coerce.number().int().min(1).max(MAX_PAGE_LIMIT).optional(),
  cursor: z.string().min(1).optional().describe('next_cursor of the previous page'),
};
const trueOrFalse = z.enum(['true', 'false'], { error: 'true or false' });
const since = z.iso
  .datetime({ offset: true, error: 'an ISO 8601 time such as 2026-01-02T03:04:05Z' })
  .optional()
  .describe('only events at or after this time');
const eventFilters = {
  type: z.string().min(1).optional().describe("only events of this type (the view's `action`)"),
  level: z.enum(['info', 'warning', 'error']).optional(),
  since,
};

export const hostListQuerySchema = z.object({
  status: z
    .enum(['online', 'offline', 'maintenance'])
    .optional()
    .describe('as the list reports it: maintenance is stored, online/offline come from the etcd lease'),
  enabled: trueOrFalse.optional(),
  driver: z.enum(['qemu', 'sim']).optional(),
  label: z
    .string()
    .regex(LABEL_FILTER, 'key=value')
    .optional()
    .describe('key=value: only hosts with this label'),
  ...pageQuery,
});

export const hostEventListQuerySchema = z.object({ ...eventFilters, ...pageQuery });

export const alertRuleListQuerySchema = z.object({
  enabled: trueOrFalse.optional(),
  metric: z.enum(alertMetrics).optional(),
  ...pageQuery,
});

export const alertEventsQuerySchema = z.object({
  rule: z.string().min(1).optional().describe('rule id or name: only its events'),
  ...eventFilters,
  ...pageQuery,
});

export const policyListQuerySchema = z.object({ ...pageQuery });

export const tokenListQuerySchema = z.object({
  role: z.enum(apiRoles).optional(),
  revoked: trueOrFalse.optional(),
  ...pageQuery,
});

export const migrationListQuerySchema = z.object({
  guest: z.string().min(1).optional(),
  host: z.string().min(1).optional(),
  status: z.enum(['running', 'completed', 'failed', 'cancelled']).optional(),
  limit: z.coerce.number().int().min(1).max(MAX_PAGE_LIMIT).optional(),
  cursor: z.string().min(1).optional().describe('next_cursor of the previous page'),
});

export const coldMigrateSchema = z.strictObject({
  prefer_host: z.string().min(1, 'a host id or name').optional(),
  /** Start the guest on its new host (else it arrives stopped, `ready`). */
  auto_start: z.boolean().default(false),
  /** The source host is down: every disk must be on shared storage. */
  rescue_mode: z.boolean().default(false),
});
