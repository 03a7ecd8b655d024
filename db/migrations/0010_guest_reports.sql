CREATE TABLE "guest_reports" (
	"host_id" uuid NOT NULL,
	"guest_id" text NOT NULL,
	"status" text NOT NULL,
	"hypervisor_status" text,
	"pid" integer,
	"heartbeat_counter" integer,
	"heartbeat_at" timestamp with time zone,
	"reported_at" timestamp with time zone NOT NULL,
	CONSTRAINT "guest_reports_host_id_guest_id_pk" PRIMARY KEY("host_id","guest_id")
);
--> statement-breakpoint
ALTER TABLE "hosts" ADD COLUMN "last_report_at" timestamp with time zone;--> statement-breakpoint
ALTER TABLE "hosts" ADD COLUMN "report_interval_s" integer;--> statement-breakpoint
ALTER TABLE "guest_reports" ADD CONSTRAINT "guest_reports_host_id_hosts_id_fk" FOREIGN KEY ("host_id") REFERENCES "public"."hosts"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "guest_reports_guest_idx" ON "guest_reports" USING btree ("guest_id");