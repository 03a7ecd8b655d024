ALTER TABLE "migrations" ADD COLUMN "group_id" uuid;--> statement-breakpoint
CREATE INDEX "migrations_group_idx" ON "migrations" USING btree ("group_id");