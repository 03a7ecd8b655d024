CREATE TABLE "migration_alerts" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"name" text NOT NULL,
	"metric" text NOT NULL,
	"threshold" double precision NOT NULL,
	"period_s" integer NOT NULL,
	"source_host_ids" jsonb DEFAULT '[]'::jsonb NOT NULL,
	"target_host_ids" jsonb DEFAULT '[]'::jsonb NOT NULL,
	"source_guest_ids" jsonb DEFAULT '[]'::jsonb NOT NULL,
	"margin" double precision,
	"cooldown_s" integer,
	"enabled" boolean DEFAULT true NOT NULL,
	"hosts_without_data" jsonb DEFAULT '[]'::jsonb NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "migration_alerts_name_unique" UNIQUE("name")
);
--> statement-breakpoint
ALTER TABLE "events" ADD COLUMN "dedupe_key" text;--> statement-breakpoint
CREATE UNIQUE INDEX "events_dedupe_key_unique" ON "events" USING btree ("dedupe_key");