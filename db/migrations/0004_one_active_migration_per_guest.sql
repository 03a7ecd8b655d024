-- Before the index: of the active migrations of one guest, only the newest stays active; older ones are failed.
UPDATE "migrations" AS m
SET "phase" = 'failed',
    "error" = 'superseded: a newer migration of the same guest was active when one active migration per guest became enforced',
    "finished_at" = now()
WHERE m."phase" NOT IN ('completed', 'failed', 'cancelled')
  AND EXISTS (
    SELECT 1 FROM "migrations" AS newer
    WHERE newer."guest_id" = m."guest_id"
      AND newer."phase" NOT IN ('completed', 'failed', 'cancelled')
      AND (newer."requested_at", newer."id") > (m."requested_at", m."id")
  );--> statement-breakpoint
CREATE UNIQUE INDEX "migrations_one_active_per_guest" ON "migrations" USING btree ("guest_id") WHERE "migrations"."phase" not in ('completed', 'failed', 'cancelled');
