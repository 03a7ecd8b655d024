-- A migrate request waits for its pre-check verdict: the API LISTENs on migration_changes (db/migration-changes.ts)
-- instead of reading the record every 20 ms. Notified at commit, with the migration's id: any phase change, and
-- the events that carry the verdict.
CREATE OR REPLACE FUNCTION notify_migration_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_TABLE_NAME = 'migrations' THEN
    PERFORM pg_notify('migration_changes', NEW.id::text);
  ELSE
    PERFORM pg_notify('migration_changes', NEW.subject_id);
  END IF;
  RETURN NULL;
END
$$;
--> statement-breakpoint
CREATE TRIGGER migrations_phase_notify AFTER UPDATE OF phase ON migrations
  FOR EACH ROW WHEN (OLD.phase IS DISTINCT FROM NEW.phase)
  EXECUTE FUNCTION notify_migration_change();
--> statement-breakpoint
CREATE TRIGGER migration_verdict_events_notify AFTER INSERT ON events
  FOR EACH ROW WHEN (NEW.subject_kind = 'migration' AND NEW.type IN ('destination_chosen', 'precheck_failed'))
  EXECUTE FUNCTION notify_migration_change();
