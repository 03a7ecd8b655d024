/**
 * What the API answers, as zod schemas: the OpenAPI document's response schemas (api/openapi.ts) and what the
 * contract test (test/integration/openapi.test.ts) checks real answers against. Objects are open (extra fields
 * pass) so adding a field is not a breaking change; every field listed must be there with its type. Records the
 * API stores as JSON and does not interpret here (a migration's progress, plan, checks) are `unknown`.
 */
import { z } from '@hono/zod-openapi';
import { migrationKinds, migrationTriggers } from '../db/schema.ts';
import { guestStatuses } from '../domain/guest-status.ts';
import { migrationPhases } from '../domain/migration-phases.ts';

/** Timestamps are ISO 8601 strings in JSON. */
const timestamp = z.string().describe('ISO 8601 timestamp');
const labelMap = z.record(z.string(), z.string());
const jsonValue = z.unknown();
const idAndName = z.object({ id: z.string(), name: z.string().nullable() });
const requester = z
  .object({ by: z.string(), role: z.string(), tokenId: z.string().optional() })
  .nullable()
  .describe('who asked: a token, the bootstrap token, or the trigger');

/** A page of a list (every list pages): the items, and the cursor of the next page (null on the last one). */
export const pageOf = <T extends z.ZodType>(item: T) =>
  z.object({
    items: z.array(item),
    next_cursor: z.string().nullable().describe('pass as `cursor` for the next page; null: no more'),
  });

export const errorResponseSchema = z
  .object({
    error: z
      .object({
        code: z.string().describe('machine-readable: invalid_request, not_found, forbidden, conflict, …'),
        message: z.string(),
        field: z.string().optional().describe('the request field at fault'),
      })
      .describe('extra fields give details, e.g. migrationId or failures of a 422'),
  })
  .openapi('Error');

export const hostSchema = z
  .object({
    id: z.string(),
    name: z.string(),
    status: z.enum(['online', 'offline', 'maintenance']),
    enabled: z.boolean(),
    address: z.string(),
    agentUrl: z.string(),
    migrationAddress: z.string().nullable(),
    migrationLinkMbps: z.number().nullable(),
    driver: z.string(),
    cpuModel: z.string(),
    microcode: z.string(),
    kernel: z.string(),
    qemuVersion: z.string(),
    cpus: z.number(),
    memoryMb: z.number(),
    networks: z.array(z.string()),
    sharedStoragePath: z.string(),
    labels: labelMap,
    autoMigrateOnHostDown: z.boolean(),
    autoMigrateOnHostShutdown: z.boolean(),
    registeredAt: timestamp,
    updatedAt: timestamp,
    lastReportAt: timestamp.nullable().describe("when the host's agent last reported its guests"),
    reports: z
      .enum(['current', 'late', 'never'])
      .describe('late: no report for 3 of its intervals (the guests shown are as of lastReportAt)'),
  })
  .openapi('Host');

const peerSchema = z.object({
  id: z.string(),
  name: z.string(),
  address: z.string(),
  migrationAddress: z.string().nullable(),
  agentUrl: z.string(),
});

/** A registration's answer: the host, and the cluster's hosts its agent may migrate to. */
export const registeredHostSchema = hostSchema.extend({
  peers: z
    .array(peerSchema)
    .optional()
    .describe('absent when the agent sent the current `peersRevision` in `x-peers-revision`: it holds them'),
  peersRevision: z.string().optional().describe('names this peer list (a registration always has it)'),
});

export const enrolmentSchema = z.object({
  host: registeredHostSchema,
  credential: z.string().describe("the host's own credential (vmh_…), shown only in this answer"),
});

export const eventSchema = z.object({
  id: z.number(),
  at: timestamp,
  action: z.string(),
  level: z.string(),
  notes: z.string(),
  data: jsonValue,
  requestedBy: requester,
});

export const hostEventSchema = eventSchema
  .extend({ hostId: z.string(), hostName: z.string() })
  .openapi('HostEvent');

const liveStateSchema = z
  .union([
    z.object({ agentReachable: z.literal(false), error: z.string(), lastReportAt: timestamp.nullable() }),
    z.object({
      agentReachable: z.literal(true),
      status: z.string(),
      hypervisorStatus: z.string().nullable(),
      pid: z.number().nullable(),
      heartbeat: jsonValue,
      lastReportAt: timestamp,
    }),
  ])
  .nullable()
  .describe(
    "what the host's agent last reported of the guest (its reports come on every change and every interval); agentReachable false when they stopped coming",
  );

export const serverSchema = z
  .object({
    id: z.string(),
    name: z.string(),
    status: z.enum(guestStatuses),
    host: idAndName,
    vcpus: z.number(),
    memoryMb: z.number(),
    disks: z.array(jsonValue),
    networks: z.array(jsonValue),
    labels: labelMap,
    project: z.string(),
    projectLabels: labelMap,
    highlyAvailable: z.boolean(),
    passthroughDevices: z.array(z.string()),
    dirtyRateMibs: z.number(),
    lastError: z.string().nullable(),
    createdAt: timestamp,
    updatedAt: timestamp,
    live: liveStateSchema,
  })
  .openapi('Server');

export const migrationEventSchema = z.object({
  at: timestamp,
  type: z.string(),
  level: z.string(),
  message: z.string(),
  data: jsonValue,
  requestedBy: requester,
});

export const migrationSchema = z
  .object({
    id: z.string(),
    kind: z.enum(migrationKinds),
    guest: idAndName,
    source: idAndName,
    destination: idAndName.nullable(),
    trigger: z.enum(migrationTriggers),
    groupId: z.string().nullable(),
    phase: z.enum(migrationPhases),
    options: jsonValue,
    resolvedPolicy: jsonValue,
    progress: jsonValue,
    timings: jsonValue,
    checks: jsonValue,
    error: z.string().nullable(),
    workflowId: z.string(),
    requestedBy: requester,
    requestedAt: timestamp,
    finishedAt: timestamp.nullable(),
  })
  .openapi('Migration');

/** One migration as GET /v1/migrations/:id shows it (and a migrate request answers it): with its events. */
export const migrationDetailSchema = migrationSchema
  .extend({ events: z.array(migrationEventSchema) })
  .openapi('MigrationDetail');

export const migrationGroupSchema = z
  .object({
    groupId: z.string(),
    done: z.boolean(),
    migrations: z.array(
      z.object({
        id: z.string(),
        server: z.string().nullable(),
        trigger: z.string(),
        phase: z.string(),
        source: z.string().nullable(),
        destination: z.string().nullable(),
        error: z.string().nullable(),
      }),
    ),
  })
  .openapi('MigrationGroup');

export const migrationConfigSchema = z.object({
  config: z.record(z.string(), jsonValue),
  defaults: z.record(z.string(), jsonValue),
});

export const storedPolicySchema = z.looseObject({ name: z.string(), selectors: jsonValue });

export const serverMigrationPolicySchema = z.object({
  server: z.object({ id: z.string(), name: z.string(), labels: labelMap, projectLabels: labelMap }),
  policy: z.string().nullable(),
  explanation: jsonValue,
  candidates: jsonValue,
  settings: jsonValue,
});

const namedIds = z.array(idAndName);

export const alertRuleSchema = z
  .object({
    id: z.string(),
    name: z.string(),
    metric: z.string(),
    comparator: z.string(),
    threshold: z.number(),
    periodS: z.number(),
    sourceHosts: namedIds,
    targetHosts: namedIds,
    sourceGuests: namedIds,
    margin: z.number().nullable(),
    cooldownS: z.number().nullable(),
    enabled: z.boolean(),
    hostsWithoutData: namedIds,
    scheduleId: z.string(),
    createdAt: timestamp,
    updatedAt: timestamp,
  })
  .openapi('AlertRule');

export const alertEventSchema = eventSchema
  .extend({ ruleId: z.string(), ruleName: z.string().nullable() })
  .openapi('AlertEvent');

export const alertPlanSchema = z.looseObject({ rule: z.string(), now: jsonValue });

export const tokenSchema = z
  .object({
    id: z.string(),
    name: z.string(),
    role: z.string(),
    projects: z.array(z.string()).nullable(),
    createdAt: timestamp,
    createdBy: requester,
    lastUsedAt: timestamp.nullable(),
    revoked: z.boolean(),
    revokedAt: timestamp.nullable(),
  })
  .openapi('Token');

const secretNote = { token: z.string(), note: z.string() };

/** A created token: the token itself is in this answer and nowhere else. */
export const createdTokenSchema = tokenSchema.extend(secretNote);

export const enrolmentTokenSchema = z.object({
  id: z.string(),
  name: z.string().nullable(),
  host: z.string().nullable(),
  createdAt: timestamp,
  createdBy: requester,
  expiresAt: timestamp,
  used: z.boolean(),
  ...secretNote,
});

export const healthSchema = z.object({ status: z.literal('ok') });
