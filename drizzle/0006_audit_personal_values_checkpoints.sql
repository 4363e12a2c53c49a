CREATE TABLE "audit_checkpoints" (
	"id" bigint PRIMARY KEY GENERATED ALWAYS AS IDENTITY (sequence name "audit_checkpoints_id_seq" INCREMENT BY 1 MINVALUE 1 MAXVALUE 9223372036854775807 START WITH 1 CACHE 1),
	"at" timestamp with time zone DEFAULT now() NOT NULL,
	"count" bigint NOT NULL,
	"last_event_id" bigint NOT NULL,
	"head_hash" text NOT NULL,
	"signature" text NOT NULL
);
--> statement-breakpoint
CREATE TABLE "audit_personal_values" (
	"event_id" bigint NOT NULL,
	"digest" text NOT NULL,
	"salt" text NOT NULL,
	"value" text NOT NULL,
	"subject_type" text NOT NULL,
	"subject_id" uuid NOT NULL,
	CONSTRAINT "audit_personal_values_pkey" PRIMARY KEY("event_id","digest")
);
--> statement-breakpoint
CREATE TABLE "data_upgrades" (
	"name" text PRIMARY KEY NOT NULL,
	"done_at" timestamp with time zone
);
--> statement-breakpoint
ALTER TABLE "audit_events" ALTER COLUMN "at" SET DEFAULT now();--> statement-breakpoint
ALTER TABLE "custodians" ALTER COLUMN "name" DROP NOT NULL;--> statement-breakpoint
ALTER TABLE "incident_notes" ALTER COLUMN "text" DROP NOT NULL;--> statement-breakpoint
ALTER TABLE "incidents" ALTER COLUMN "circumstances" DROP NOT NULL;--> statement-breakpoint
ALTER TABLE "custodians" ADD COLUMN "erased_at" timestamp with time zone;--> statement-breakpoint
ALTER TABLE "incidents" ADD COLUMN "free_text_erased_at" timestamp with time zone;--> statement-breakpoint
CREATE UNIQUE INDEX "audit_checkpoints_count_key" ON "audit_checkpoints" USING btree ("count");--> statement-breakpoint
CREATE INDEX "audit_personal_values_subject_idx" ON "audit_personal_values" USING btree ("subject_type","subject_id");--> statement-breakpoint
ALTER TABLE "custodians" ADD CONSTRAINT "custodians_erased_state" CHECK (("custodians"."erased_at" IS NULL) = ("custodians"."name" IS NOT NULL) AND ("custodians"."erased_at" IS NULL OR ("custodians"."email" IS NULL AND "custodians"."constituency" IS NULL)));--> statement-breakpoint
ALTER TABLE "incidents" ADD CONSTRAINT "incidents_circumstances_kept" CHECK ("incidents"."circumstances" IS NOT NULL OR "incidents"."free_text_erased_at" IS NOT NULL);--> statement-breakpoint
-- A value may be erased (its row deleted) but never changed; an erased event's digest stays in the
-- chain. Deleting events themselves stays refused (0001).
ALTER TABLE "audit_personal_values" ADD CONSTRAINT "audit_personal_values_event_fk"
  FOREIGN KEY ("event_id") REFERENCES "audit_events"("id") DEFERRABLE INITIALLY DEFERRED;--> statement-breakpoint
CREATE TRIGGER audit_personal_values_no_update
  BEFORE UPDATE ON audit_personal_values
  FOR EACH ROW EXECUTE FUNCTION audit_events_refuse_change();
--> statement-breakpoint
CREATE TRIGGER audit_personal_values_no_truncate
  BEFORE TRUNCATE ON audit_personal_values
  FOR EACH STATEMENT EXECUTE FUNCTION audit_events_refuse_change();
--> statement-breakpoint
CREATE TRIGGER audit_checkpoints_no_update_or_delete
  BEFORE UPDATE OR DELETE ON audit_checkpoints
  FOR EACH ROW EXECUTE FUNCTION audit_events_refuse_change();
--> statement-breakpoint
CREATE TRIGGER audit_checkpoints_no_truncate
  BEFORE TRUNCATE ON audit_checkpoints
  FOR EACH STATEMENT EXECUTE FUNCTION audit_events_refuse_change();
--> statement-breakpoint
-- The personal values of an event, by entity type: each string found at one of these paths in
-- `before` or `after` is replaced by {"$digest": sha256(salt || value)} and kept, with its salt,
-- in audit_personal_values (whose subject is the event's entity). Every writer goes through it.
CREATE OR REPLACE FUNCTION audit_personal_paths(entity_type text) RETURNS text[][]
LANGUAGE sql IMMUTABLE AS $$
  SELECT CASE entity_type
    WHEN 'custodian' THEN ARRAY[ARRAY['name', ''], ARRAY['email', ''], ARRAY['constituency', '']]
    WHEN 'incident' THEN ARRAY[ARRAY['circumstances', ''], ARRAY['closeReason', ''], ARRAY['text', ''],
                               ARRAY['location', 'description'], ARRAY['recovery', 'notes']]
  END
$$;
--> statement-breakpoint
CREATE OR REPLACE FUNCTION audit_separate_personal(event_id bigint, entity_type text, subject_id uuid, doc jsonb)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
  paths text[][] := audit_personal_paths(entity_type);
  path text[];
  found jsonb;
  salt text;
  digest text;
BEGIN
  IF doc IS NULL OR paths IS NULL THEN RETURN doc; END IF;
  FOREACH path SLICE 1 IN ARRAY paths LOOP
    IF path[2] = '' THEN path := path[1:1]; END IF;
    found := doc #> path;
    CONTINUE WHEN found IS NULL OR jsonb_typeof(found) <> 'string';
    salt := replace(gen_random_uuid()::text, '-', '');
    digest := encode(sha256(convert_to(salt || (found #>> '{}'), 'UTF8')), 'hex');
    doc := jsonb_set(doc, path, jsonb_build_object('$digest', digest));
    INSERT INTO audit_personal_values (event_id, digest, salt, value, subject_type, subject_id)
      VALUES (event_id, digest, salt, found #>> '{}', entity_type, subject_id)
      ON CONFLICT DO NOTHING;
  END LOOP;
  RETURN doc;
END;
$$;
--> statement-breakpoint
-- Every event is dated by the database, and its personal values separated, whoever writes it.
CREATE OR REPLACE FUNCTION audit_events_on_insert() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  NEW.at := date_trunc('milliseconds', now()); -- what the chain hashes (a JavaScript Date)
  IF NEW.entity_type IN ('custodian', 'incident') THEN
    NEW.before := audit_separate_personal(NEW.id, NEW.entity_type, NEW.entity_id, NEW.before);
    NEW.after := audit_separate_personal(NEW.id, NEW.entity_type, NEW.entity_id, NEW.after);
  END IF;
  RETURN NEW;
END;
$$;
--> statement-breakpoint
CREATE TRIGGER audit_events_on_insert
  BEFORE INSERT ON audit_events
  FOR EACH ROW EXECUTE FUNCTION audit_events_on_insert();
--> statement-breakpoint
-- Events already stored hold their personal values in place: the service separates them and
-- re-hashes the chain from its genesis once, after the migrations (src/modules/audit/upgrade.ts).
INSERT INTO data_upgrades (name) SELECT 'audit-personal-values' WHERE EXISTS (SELECT 1 FROM audit_events);
