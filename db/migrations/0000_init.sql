CREATE TABLE "clusters" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"name" text NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "clusters_name_unique" UNIQUE("name")
);
--> statement-breakpoint
CREATE TABLE "events" (
	"id" bigserial PRIMARY KEY NOT NULL,
	"at" timestamp with time zone DEFAULT now() NOT NULL,
	"subject_kind" text NOT NULL,
	"subject_id" text NOT NULL,
	"type" text NOT NULL,
	"level" text DEFAULT 'info' NOT NULL,
	"message" text NOT NULL,
	"data" jsonb DEFAULT '{}'::jsonb NOT NULL
);
--> statement-breakpoint
CREATE TABLE "guests" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"name" text NOT NULL,
	"host_id" uuid NOT NULL,
	"status" text DEFAULT 'creating' NOT NULL,
	"vcpus" integer NOT NULL,
	"memory_mb" integer NOT NULL,
	"disks" jsonb DEFAULT '[]'::jsonb NOT NULL,
	"networks" jsonb DEFAULT '[]'::jsonb NOT NULL,
	"labels" jsonb DEFAULT '{}'::jsonb NOT NULL,
	"project" text DEFAULT 'default' NOT NULL,
	"project_labels" jsonb DEFAULT '{}'::jsonb NOT NULL,
	"highly_available" boolean DEFAULT false NOT NULL,
	"passthrough_devices" jsonb DEFAULT '[]'::jsonb NOT NULL,
	"dirty_rate_mibs" integer DEFAULT 0 NOT NULL,
	"fill_mb" integer DEFAULT 0 NOT NULL,
	"last_error" text,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "hosts" (
	"id" uuid PRIMARY KEY NOT NULL,
	"cluster_id" uuid NOT NULL,
	"name" text NOT NULL,
	"address" text NOT NULL,
	"agent_url" text NOT NULL,
	"migration_address" text,
	"status" text DEFAULT 'online' NOT NULL,
	"enabled" boolean DEFAULT true NOT NULL,
	"driver" text NOT NULL,
	"cpu_model" text NOT NULL,
	"microcode" text NOT NULL,
	"kernel" text NOT NULL,
	"qemu_version" text NOT NULL,
	"cpus" integer NOT NULL,
	"memory_mb" integer NOT NULL,
	"networks" jsonb DEFAULT '[]'::jsonb NOT NULL,
	"shared_storage_path" text NOT NULL,
	"labels" jsonb DEFAULT '{}'::jsonb NOT NULL,
	"auto_migrate_on_host_down" boolean DEFAULT false NOT NULL,
	"auto_migrate_on_host_shutdown" boolean DEFAULT false NOT NULL,
	"registered_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "migrations" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"kind" text NOT NULL,
	"guest_id" uuid NOT NULL,
	"source_host_id" uuid NOT NULL,
	"destination_host_id" uuid,
	"trigger" text DEFAULT 'manual' NOT NULL,
	"phase" text DEFAULT 'pending' NOT NULL,
	"options" jsonb DEFAULT '{}'::jsonb NOT NULL,
	"resolved_policy" jsonb,
	"progress" jsonb,
	"timings" jsonb DEFAULT '{}'::jsonb NOT NULL,
	"error" text,
	"workflow_id" text NOT NULL,
	"checks" jsonb DEFAULT '[]'::jsonb NOT NULL,
	"requested_at" timestamp with time zone DEFAULT now() NOT NULL,
	"finished_at" timestamp with time zone
);
--> statement-breakpoint
CREATE TABLE "reservations" (
	"migration_id" uuid PRIMARY KEY NOT NULL,
	"host_id" uuid NOT NULL,
	"memory_mb" integer NOT NULL,
	"vcpus" integer NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
ALTER TABLE "guests" ADD CONSTRAINT "guests_host_id_hosts_id_fk" FOREIGN KEY ("host_id") REFERENCES "public"."hosts"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "hosts" ADD CONSTRAINT "hosts_cluster_id_clusters_id_fk" FOREIGN KEY ("cluster_id") REFERENCES "public"."clusters"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "migrations" ADD CONSTRAINT "migrations_guest_id_guests_id_fk" FOREIGN KEY ("guest_id") REFERENCES "public"."guests"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "migrations" ADD CONSTRAINT "migrations_source_host_id_hosts_id_fk" FOREIGN KEY ("source_host_id") REFERENCES "public"."hosts"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "migrations" ADD CONSTRAINT "migrations_destination_host_id_hosts_id_fk" FOREIGN KEY ("destination_host_id") REFERENCES "public"."hosts"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "reservations" ADD CONSTRAINT "reservations_migration_id_migrations_id_fk" FOREIGN KEY ("migration_id") REFERENCES "public"."migrations"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "reservations" ADD CONSTRAINT "reservations_host_id_hosts_id_fk" FOREIGN KEY ("host_id") REFERENCES "public"."hosts"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "events_subject_idx" ON "events" USING btree ("subject_kind","subject_id","at");--> statement-breakpoint
CREATE UNIQUE INDEX "guests_name_unique" ON "guests" USING btree ("name");--> statement-breakpoint
CREATE INDEX "guests_host_idx" ON "guests" USING btree ("host_id");--> statement-breakpoint
CREATE UNIQUE INDEX "hosts_name_unique" ON "hosts" USING btree ("name");--> statement-breakpoint
CREATE INDEX "migrations_guest_idx" ON "migrations" USING btree ("guest_id");--> statement-breakpoint
CREATE INDEX "migrations_phase_idx" ON "migrations" USING btree ("phase");--> statement-breakpoint
CREATE INDEX "migrations_workflow_idx" ON "migrations" USING btree ("workflow_id");--> statement-breakpoint
CREATE INDEX "reservations_host_idx" ON "reservations" USING btree ("host_id");