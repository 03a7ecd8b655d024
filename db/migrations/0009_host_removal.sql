CREATE TABLE "removed_hosts" (
	"id" uuid PRIMARY KEY NOT NULL,
	"name" text NOT NULL,
	"credential_generation" integer NOT NULL,
	"removed_by" jsonb NOT NULL,
	"removed_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
ALTER TABLE "migrations" DROP CONSTRAINT "migrations_source_host_id_hosts_id_fk";
--> statement-breakpoint
ALTER TABLE "migrations" DROP CONSTRAINT "migrations_destination_host_id_hosts_id_fk";
