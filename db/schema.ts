import { sql } from 'drizzle-orm';
import {
  bigserial,
  boolean,
  doublePrecision,
  index,
  integer,
  jsonb,
  pgTable,
  primaryKey,
  text,
  timestamp,
  uniqueIndex,
  uuid,
} from 'drizzle-orm/pg-core';
import type { DiskSpec, NetworkSpec } from '../domain/agent-contract.ts';
import { apiRoles } from '../domain/api-roles.ts';
import { alertMetrics } from '../domain/alert-rule.ts';
import { guestStatuses } from '../domain/guest-status.ts';
import type { ClusterMigrationConfig } from '../domain/migration-config.ts';
import type { MigrationPolicy } from '../domain/migration-policy.ts';
import { migrationPhases, terminalMigrationPhases } from '../domain/migration-phases.ts';
import type { Requester } from '../domain/requester.ts';

export const clusters = pgTable('clusters', {
  id: uuid('id').primaryKey().defaultRandom(),
  name: text('name').notNull().unique(),
  createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
});

export const hosts = pgTable(
  'hosts',
  {
    /** The agent's own stable host id: it names the etcd health key and the metrics tag too. */
    id: uuid('id').primaryKey(),
    clusterId: uuid('cluster_id')
      .notNull()
      .references(() => clusters.id),
    name: text('name').notNull(),
    address: text('address').notNull(),
    agentUrl: text('agent_url').notNull(),
    migrationAddress: text('migration_address'),
    /** Last status written by the inventory; liveness itself is the etcd key. */
    status: text('status', { enum: ['online', 'offline', 'maintenance'] })
      .notNull()
      .default('online'),
    enabled: boolean('enabled').notNull().default(true),
    driver: text('driver', { enum: ['qemu', 'sim'] }).notNull(),
    cpuModel: text('cpu_model').notNull(),
    microcode: text('microcode').notNull(),
    kernel: text('kernel').notNull(),
    qemuVersion: text('qemu_version').notNull(),
    cpus: integer('cpus').notNull(),
    memoryMb: integer('memory_mb').notNull(),
    networks: jsonb('networks').$type<string[]>().notNull().default([]),
    sharedStoragePath: text('shared_storage_path').notNull(),
    /** The migration link's speed in Mbit/s as the agent last reported it; null when unknown (auto bandwidth). */
    migrationLinkMbps: integer('migration_link_mbps'),
    labels: jsonb('labels').$type<Record<string, string>>().notNull().default({}),
    autoMigrateOnHostDown: boolean('auto_migrate_on_host_down').notNull().default(false),
    autoMigrateOnHostShutdown: boolean('auto_migrate_on_host_shutdown').notNull().default(false),
    /** The host's credential is derived from its id and this (domain/host-credential.ts); a bump revokes it. */
    credentialGeneration: integer('credential_generation').notNull().default(1),
    /** When the agent's last state report arrived (PUT /v1/hosts/:id/report); null before the first. */
    lastReportAt: timestamp('last_report_at', { withTimezone: true }),
    /** How often the agent said it reports: its reports are late after a few intervals (domain/guest-reports.ts). */
    reportIntervalS: integer('report_interval_s'),
    registeredAt: timestamp('registered_at', { withTimezone: true }).notNull().defaultNow(),
    updatedAt: timestamp('updated_at', { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [uniqueIndex('hosts_name_unique').on(t.name)],
);

export { guestStatuses } from '../domain/guest-status.ts';

export const guests = pgTable(
  'guests',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    name: text('name').notNull(),
    hostId: uuid('host_id')
      .notNull()
      .references(() => hosts.id),
    status: text('status', { enum: guestStatuses }).notNull().default('creating'),
    vcpus: integer('vcpus').notNull(),
    memoryMb: integer('memory_mb').notNull(),
    disks: jsonb('disks').$type<DiskSpec[]>().notNull().default([]),
    networks: jsonb('networks').$type<NetworkSpec[]>().notNull().default([]),
    labels: jsonb('labels').$type<Record<string, string>>().notNull().default({}),
    project: text('project').notNull().default('default'),
    projectLabels: jsonb('project_labels').$type<Record<string, string>>().notNull().default({}),
    highlyAvailable: boolean('highly_available').notNull().default(false),
    passthroughDevices: jsonb('passthrough_devices').$type<string[]>().notNull().default([]),
    /** Test-image workload settings, passed to the agent. */
    dirtyRateMibs: integer('dirty_rate_mibs').notNull().default(0),
    fillMb: integer('fill_mb').notNull().default(0),
    /** Test-image workload: write a checksummed pattern to the first disk every few seconds. */
    diskTest: boolean('disk_test').notNull().default(false),
    lastError: text('last_error'),
    createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
    updatedAt: timestamp('updated_at', { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [uniqueIndex('guests_name_unique').on(t.name), index('guests_host_idx').on(t.hostId)],
);

/**
 * What each host's agent last reported of each guest it holds: reads of live state come from here, never from
 * the agents. A guest in flight has a row on both hosts. Written only when something but the heartbeat changed,
 * or the heartbeat is older than the refresh window (db/guest-report-store.ts).
 */
export const guestReports = pgTable(
  'guest_reports',
  {
    hostId: uuid('host_id')
      .notNull()
      .references(() => hosts.id, { onDelete: 'cascade' }),
    /** Text, not a reference: an agent may hold a guest the inventory does not know (a leftover, a test's). */
    guestId: text('guest_id').notNull(),
    status: text('status').notNull(),
    hypervisorStatus: text('hypervisor_status'),
    pid: integer('pid'),
    heartbeatCounter: integer('heartbeat_counter'),
    heartbeatAt: timestamp('heartbeat_at', { withTimezone: true }),
    /** When the agent took the state this row holds. */
    reportedAt: timestamp('reported_at', { withTimezone: true }).notNull(),
  },
  (t) => [primaryKey({ columns: [t.hostId, t.guestId] }), index('guest_reports_guest_idx').on(t.guestId)],
);

export const migrationKinds = ['live', 'cold', 'rescue'] as const;
export const migrationTriggers = ['manual', 'maintenance', 'host-down', 'alert', 'affinity'] as const;

/** The partial unique index that refuses a second active (non-terminal) migration of a guest. */
export const ONE_ACTIVE_MIGRATION_PER_GUEST = 'migrations_one_active_per_guest';

export const migrations = pgTable(
  'migrations',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    kind: text('kind', { enum: migrationKinds }).notNull(),
    guestId: uuid('guest_id')
      .notNull()
      .references(() => guests.id),
    /**
     * No foreign key to hosts, on purpose: a removed host's finished migrations stay readable, its name kept in
     * removed_hosts (DELETE /v1/hosts/:id refuses while a migration involving it is active).
     */
    sourceHostId: uuid('source_host_id').notNull(),
    destinationHostId: uuid('destination_host_id'),
    trigger: text('trigger', { enum: migrationTriggers }).notNull().default('manual'),
    phase: text('phase', { enum: migrationPhases }).notNull().default('pending'),
    options: jsonb('options').$type<Record<string, unknown>>().notNull().default({}),
    resolvedPolicy: jsonb('resolved_policy').$type<Record<string, unknown>>(),
    progress: jsonb('progress').$type<Record<string, unknown>>(),
    /** Start and end of each phase, ms since epoch, keyed by phase name. */
    timings: jsonb('timings')
      .$type<Record<string, { startedAt: number; endedAt?: number }>>()
      .notNull()
      .default({}),
    error: text('error'),
    /** Per guest and kind, so a second request while one runs is refused by Temporal itself too. */
    workflowId: text('workflow_id').notNull(),
    /** Set when the migration is one of a with_same_labels request: the parent workflow's group. */
    groupId: uuid('group_id'),
    /** Every pre-check with its values, as evaluated when the migration started. */
    checks: jsonb('checks').$type<Record<string, unknown>[]>().notNull().default([]),
    /** Who asked: a token, the bootstrap token, or the trigger (alert rule, host down). Null on older rows. */
    requestedBy: jsonb('requested_by').$type<Requester>(),
    requestedAt: timestamp('requested_at', { withTimezone: true }).notNull().defaultNow(),
    finishedAt: timestamp('finished_at', { withTimezone: true }),
  },
  (t) => [
    index('migrations_guest_idx').on(t.guestId),
    index('migrations_phase_idx').on(t.phase),
    index('migrations_workflow_idx').on(t.workflowId),
    index('migrations_group_idx').on(t.groupId),
    index('migrations_finished_at_idx').on(t.finishedAt),
    uniqueIndex(ONE_ACTIVE_MIGRATION_PER_GUEST)
      .on(t.guestId)
      .where(sql`${t.phase} not in (${sql.raw(terminalMigrationPhases.map((p) => `'${p}'`).join(', '))})`),
  ],
);

/**
 * Hosts an admin removed (DELETE /v1/hosts/:id): who and when, the name their id had for the migration history,
 * and the credential generation it had reached, so the same id enrolling again gets a credential the old one is
 * not (db/host-removal-store.ts).
 */
export const removedHosts = pgTable('removed_hosts', {
  id: uuid('id').primaryKey(),
  name: text('name').notNull(),
  credentialGeneration: integer('credential_generation').notNull(),
  removedBy: jsonb('removed_by').$type<Requester>().notNull(),
  removedAt: timestamp('removed_at', { withTimezone: true }).notNull().defaultNow(),
});

/** Capacity held on a destination while a migration to it is in flight; gone when it commits or rolls back. */
export const reservations = pgTable(
  'reservations',
  {
    migrationId: uuid('migration_id')
      .primaryKey()
      .references(() => migrations.id),
    hostId: uuid('host_id')
      .notNull()
      .references(() => hosts.id),
    memoryMb: integer('memory_mb').notNull(),
    vcpus: integer('vcpus').notNull(),
    createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [index('reservations_host_idx').on(t.hostId)],
);

export const events = pgTable(
  'events',
  {
    id: bigserial('id', { mode: 'number' }).primaryKey(),
    at: timestamp('at', { withTimezone: true }).notNull().defaultNow(),
    /** What the event is about: 'host', 'guest', 'migration', 'rule'. */
    subjectKind: text('subject_kind').notNull(),
    subjectId: text('subject_id').notNull(),
    type: text('type').notNull(),
    level: text('level', { enum: ['info', 'warning', 'error'] })
      .notNull()
      .default('info'),
    message: text('message').notNull(),
    data: jsonb('data')
      .$type<Record<string, unknown>>()
      .notNull()
      .default(sql`'{}'::jsonb`),
    /** Set by writers that may retry (an activity): the same key records the event once. */
    dedupeKey: text('dedupe_key'),
    /**
     * Who caused it: the API caller for what a request wrote, the migration's requester for a migration's events;
     * null for what a workflow decided on its own (host down, alert cycles, evacuation steps).
     */
    requestedBy: jsonb('requested_by').$type<Requester>(),
  },
  (t) => [
    /** The event lists page newest first by (at, id): of one subject, and of one kind (every rule's events). */
    index('events_subject_idx').on(
      t.subjectKind,
      t.subjectId,
      t.at.desc().nullsFirst(),
      t.id.desc().nullsFirst(),
    ),
    index('events_kind_at_idx').on(t.subjectKind, t.at.desc().nullsFirst(), t.id.desc().nullsFirst()),
    index('events_at_idx').on(t.at),
    uniqueIndex('events_dedupe_key_unique').on(t.dedupeKey),
  ],
);

/** A migration-alert rule (Cloudpods' migrationalert); its Temporal Schedule is named after it. */
export const migrationAlerts = pgTable('migration_alerts', {
  id: uuid('id').primaryKey().defaultRandom(),
  name: text('name').notNull().unique(),
  metric: text('metric', { enum: alertMetrics }).notNull(),
  /** Percent for cpu.usage_active, bytes for mem.available. */
  threshold: doublePrecision('threshold').notNull(),
  periodS: integer('period_s').notNull(),
  sourceHostIds: jsonb('source_host_ids').$type<string[]>().notNull().default([]),
  targetHostIds: jsonb('target_host_ids').$type<string[]>().notNull().default([]),
  sourceGuestIds: jsonb('source_guest_ids').$type<string[]>().notNull().default([]),
  /** Null: the planner's defaults (DEFAULT_ALERT_MARGIN, DEFAULT_COOLDOWN_PERIODS periods). */
  margin: doublePrecision('margin'),
  cooldownS: integer('cooldown_s'),
  enabled: boolean('enabled').notNull().default(true),
  /** Watched hosts that had no data at the last cycle: the no-data event is recorded once, on the change. */
  hostsWithoutData: jsonb('hosts_without_data').$type<string[]>().notNull().default([]),
  createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
  updatedAt: timestamp('updated_at', { withTimezone: true }).notNull().defaultNow(),
});

/** The cluster's migration config as last PUT, every field present (a field left out took its default then). */
export const migrationConfigs = pgTable('migration_configs', {
  clusterId: uuid('cluster_id')
    .primaryKey()
    .references(() => clusters.id),
  config: jsonb('config').$type<ClusterMigrationConfig>().notNull(),
  updatedAt: timestamp('updated_at', { withTimezone: true }).notNull().defaultNow(),
});

export const migrationPolicies = pgTable('migration_policies', {
  name: text('name').primaryKey(),
  policy: jsonb('policy').$type<MigrationPolicy>().notNull(),
  createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
  updatedAt: timestamp('updated_at', { withTimezone: true }).notNull().defaultNow(),
});

/**
 * API tokens with a role and, optionally, the projects they are limited to. Only the SHA-256 of the token is
 * stored; a revoked token keeps its row (and its name) for the audit trail of what it asked for.
 */
export const apiTokens = pgTable('api_tokens', {
  id: uuid('id').primaryKey().defaultRandom(),
  name: text('name').notNull().unique(),
  role: text('role', { enum: apiRoles }).notNull(),
  /** Null: every project. */
  projects: jsonb('projects').$type<string[]>(),
  /** Hex SHA-256 of the whole token (`vmt_…`). */
  tokenHash: text('token_hash').notNull().unique(),
  createdBy: jsonb('created_by').$type<Requester>().notNull(),
  createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
  /** Refreshed at most once a minute (domain/api-tokens.ts). */
  lastUsedAt: timestamp('last_used_at', { withTimezone: true }),
  revokedAt: timestamp('revoked_at', { withTimezone: true }),
});

/** One-time enrolment tokens (`vme_…`): a new host trades one for its own credential (POST /v1/hosts/enrol). */
export const enrolmentTokens = pgTable('enrolment_tokens', {
  id: uuid('id').primaryKey().defaultRandom(),
  name: text('name'),
  /** Set: only a host of this name may enrol with it (and re-enrol an existing host of that name). */
  hostName: text('host_name'),
  /** Hex SHA-256 of the whole token. */
  tokenHash: text('token_hash').notNull().unique(),
  createdBy: jsonb('created_by').$type<Requester>().notNull(),
  createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
  expiresAt: timestamp('expires_at', { withTimezone: true }).notNull(),
  usedAt: timestamp('used_at', { withTimezone: true }),
  /** The host that enrolled with it. */
  usedByHostId: uuid('used_by_host_id'),
});

export type EnrolmentToken = typeof enrolmentTokens.$inferSelect;
export type Host = typeof hosts.$inferSelect;
export type Guest = typeof guests.$inferSelect;
export type GuestReport = typeof guestReports.$inferSelect;
export type Migration = typeof migrations.$inferSelect;
export type Event = typeof events.$inferSelect;
export type Reservation = typeof reservations.$inferSelect;
export type MigrationAlert = typeof migrationAlerts.$inferSelect;
export type ApiToken = typeof apiTokens.$inferSelect;
