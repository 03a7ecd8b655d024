CREATE INDEX "events_at_idx" ON "events" USING btree ("at");--> statement-breakpoint
CREATE INDEX "migrations_finished_at_idx" ON "migrations" USING btree ("finished_at");