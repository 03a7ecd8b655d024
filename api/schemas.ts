import { guestStatuses } from '../domain/guest-status.ts';
import { z } from 'zod';
import { diskSpecSchema, networkSpecSchema } from '../domain/agent-contract.ts';
import { MAX_PAGE_LIMIT } from '../domain/paging.ts';

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

export const alertEventsQuerySchema = z.object({
  rule: z.string().min(1).optional(),
  limit: z.coerce.number().int().min(1).max(1000).default(200),
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
