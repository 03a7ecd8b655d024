DROP INDEX "events_subject_idx";--> statement-breakpoint
CREATE INDEX "events_kind_at_idx" ON "events" USING btree ("subject_kind","at" DESC NULLS FIRST,"id" DESC NULLS FIRST);--> statement-breakpoint
CREATE INDEX "events_subject_idx" ON "events" USING btree ("subject_kind","subject_id","at" DESC NULLS FIRST,"id" DESC NULLS FIRST);