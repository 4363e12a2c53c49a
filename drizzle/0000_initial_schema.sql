CREATE EXTENSION IF NOT EXISTS pg_trgm;
--> statement-breakpoint
CREATE TYPE "public"."classification" AS ENUM('official', 'official_sensitive', 'secret');--> statement-breakpoint
CREATE TYPE "public"."custodian_kind" AS ENUM('mp', 'peer', 'staff', 'office');--> statement-breakpoint
CREATE TYPE "public"."device_kind" AS ENUM('laptop', 'phone', 'tablet', 'desktop', 'removable_media', 'security_token', 'other');--> statement-breakpoint
CREATE TYPE "public"."device_status" AS ENUM('in_stock', 'assigned', 'lost', 'stolen', 'retired');--> statement-breakpoint
CREATE TYPE "public"."house" AS ENUM('commons', 'lords');--> statement-breakpoint
CREATE TYPE "public"."incident_kind" AS ENUM('lost', 'stolen');--> statement-breakpoint
CREATE TYPE "public"."incident_status" AS ENUM('open', 'recovered', 'closed');--> statement-breakpoint
CREATE TYPE "public"."location_category" AS ENUM('parliamentary_estate', 'constituency_office', 'home', 'transit', 'abroad', 'other');--> statement-breakpoint
CREATE TYPE "public"."recovery_condition" AS ENUM('intact', 'damaged', 'tampered');--> statement-breakpoint
CREATE TYPE "public"."remote_wipe" AS ENUM('not_requested', 'requested', 'confirmed', 'not_possible');--> statement-breakpoint
CREATE TYPE "public"."risk_level" AS ENUM('low', 'medium', 'high', 'critical');--> statement-breakpoint
CREATE TYPE "public"."scan_identifier_type" AS ENUM('asset_tag', 'serial_number');--> statement-breakpoint
CREATE TYPE "public"."stocktake_status" AS ENUM('open', 'closed');--> statement-breakpoint
CREATE TABLE "assignments" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"device_id" uuid NOT NULL,
	"custodian_id" uuid NOT NULL,
	"assigned_at" timestamp with time zone NOT NULL,
	"returned_at" timestamp with time zone,
	"ended_by" text,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"created_by" text NOT NULL,
	CONSTRAINT "assignments_returned_after_assigned" CHECK ("assignments"."returned_at" IS NULL OR "assignments"."returned_at" >= "assignments"."assigned_at")
);
--> statement-breakpoint
CREATE TABLE "audit_events" (
	"id" bigint PRIMARY KEY GENERATED ALWAYS AS IDENTITY (sequence name "audit_events_id_seq" INCREMENT BY 1 MINVALUE 1 MAXVALUE 9223372036854775807 START WITH 1 CACHE 1),
	"at" timestamp with time zone NOT NULL,
	"actor" text NOT NULL,
	"action" text NOT NULL,
	"entity_type" text NOT NULL,
	"entity_id" uuid NOT NULL,
	"request_id" text,
	"before" jsonb,
	"after" jsonb,
	"prev_hash" text,
	"hash" text NOT NULL,
	CONSTRAINT "audit_events_hash_format" CHECK ("audit_events"."hash" ~ '^[0-9a-f]{64}$')
);
--> statement-breakpoint
CREATE TABLE "custodians" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"kind" "custodian_kind" NOT NULL,
	"name" text NOT NULL,
	"house" "house",
	"constituency" text,
	"email" text,
	"active" boolean DEFAULT true NOT NULL,
	"left_on" date,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	"created_by" text NOT NULL,
	"version" integer DEFAULT 1 NOT NULL,
	CONSTRAINT "custodians_name_not_blank" CHECK (length(trim("custodians"."name")) > 0),
	CONSTRAINT "custodians_version_positive" CHECK ("custodians"."version" > 0)
);
--> statement-breakpoint
CREATE TABLE "devices" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"asset_tag" text NOT NULL,
	"kind" "device_kind" NOT NULL,
	"make" text NOT NULL,
	"model" text NOT NULL,
	"serial_number" text NOT NULL,
	"imei" text,
	"encrypted" boolean NOT NULL,
	"mdm_enrolled" boolean NOT NULL,
	"classification" "classification" NOT NULL,
	"purchased_on" date,
	"cost_pence" bigint,
	"status" "device_status" DEFAULT 'in_stock' NOT NULL,
	"current_custodian_id" uuid,
	"last_seen_at" timestamp with time zone,
	"retired_at" timestamp with time zone,
	"retire_reason" text,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	"created_by" text NOT NULL,
	"version" integer DEFAULT 1 NOT NULL,
	CONSTRAINT "devices_imei_format" CHECK ("devices"."imei" IS NULL OR "devices"."imei" ~ '^[0-9]{15}$'),
	CONSTRAINT "devices_cost_non_negative" CHECK ("devices"."cost_pence" IS NULL OR "devices"."cost_pence" >= 0),
	CONSTRAINT "devices_custodian_matches_status" CHECK (("devices"."status" = 'assigned') = ("devices"."current_custodian_id" IS NOT NULL)),
	CONSTRAINT "devices_version_positive" CHECK ("devices"."version" > 0)
);
--> statement-breakpoint
CREATE TABLE "idempotency_keys" (
	"caller" text NOT NULL,
	"key" text NOT NULL,
	"method" text NOT NULL,
	"path" text NOT NULL,
	"request_hash" text NOT NULL,
	"response_status" integer,
	"response_body" jsonb,
	"response_headers" jsonb,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"expires_at" timestamp with time zone NOT NULL,
	CONSTRAINT "idempotency_keys_caller_key_pk" PRIMARY KEY("caller","key")
);
--> statement-breakpoint
CREATE TABLE "incident_counters" (
	"year" integer PRIMARY KEY NOT NULL,
	"last_number" integer NOT NULL
);
--> statement-breakpoint
CREATE TABLE "incident_notes" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"incident_id" uuid NOT NULL,
	"text" text NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"created_by" text NOT NULL
);
--> statement-breakpoint
CREATE TABLE "incidents" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"reference" text NOT NULL,
	"status" "incident_status" DEFAULT 'open' NOT NULL,
	"device_id" uuid NOT NULL,
	"kind" "incident_kind" NOT NULL,
	"occurred_at" timestamp with time zone,
	"reported_at" timestamp with time zone NOT NULL,
	"location_category" "location_category" NOT NULL,
	"location_description" text,
	"circumstances" text NOT NULL,
	"police_reference" text,
	"personal_data_at_risk" boolean NOT NULL,
	"remote_wipe" "remote_wipe" DEFAULT 'not_requested' NOT NULL,
	"ico_deadline" timestamp with time zone,
	"ico_reported_at" timestamp with time zone,
	"recovered_at" timestamp with time zone,
	"recovery_condition" "recovery_condition",
	"recovery_notes" text,
	"closed_at" timestamp with time zone,
	"close_reason" text,
	"custodian_id" uuid,
	"device_kind" "device_kind" NOT NULL,
	"device_encrypted" boolean NOT NULL,
	"device_mdm_enrolled" boolean NOT NULL,
	"device_classification" "classification" NOT NULL,
	"frozen_risk_score" integer,
	"frozen_risk_level" "risk_level",
	"frozen_risk_factors" jsonb,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	"created_by" text NOT NULL,
	"version" integer DEFAULT 1 NOT NULL,
	CONSTRAINT "incidents_reference_format" CHECK ("incidents"."reference" ~ '^INC-[0-9]{4}-[0-9]{4,}$'),
	CONSTRAINT "incidents_occurred_before_reported" CHECK ("incidents"."occurred_at" IS NULL OR "incidents"."occurred_at" <= "incidents"."reported_at"),
	CONSTRAINT "incidents_ico_deadline_iff_personal_data" CHECK (("incidents"."ico_deadline" IS NOT NULL) = "incidents"."personal_data_at_risk"),
	CONSTRAINT "incidents_recovered_state" CHECK (("incidents"."status" = 'recovered') = ("incidents"."recovered_at" IS NOT NULL AND "incidents"."recovery_condition" IS NOT NULL)),
	CONSTRAINT "incidents_closed_state" CHECK (("incidents"."status" = 'closed') = ("incidents"."closed_at" IS NOT NULL)),
	CONSTRAINT "incidents_version_positive" CHECK ("incidents"."version" > 0)
);
--> statement-breakpoint
CREATE TABLE "stocktake_scans" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"stocktake_id" uuid NOT NULL,
	"identifier_type" "scan_identifier_type" NOT NULL,
	"identifier" text NOT NULL,
	"device_id" uuid,
	"seen_at" timestamp with time zone NOT NULL,
	"location" text,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"created_by" text NOT NULL
);
--> statement-breakpoint
CREATE TABLE "stocktakes" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"name" text NOT NULL,
	"status" "stocktake_status" DEFAULT 'open' NOT NULL,
	"scope_custodian_id" uuid,
	"scope_kind" "device_kind",
	"closed_at" timestamp with time zone,
	"frozen_discrepancies" jsonb,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	"created_by" text NOT NULL,
	"version" integer DEFAULT 1 NOT NULL,
	CONSTRAINT "stocktakes_closed_state" CHECK (("stocktakes"."status" = 'closed') = ("stocktakes"."closed_at" IS NOT NULL))
);
--> statement-breakpoint
ALTER TABLE "assignments" ADD CONSTRAINT "assignments_device_id_devices_id_fk" FOREIGN KEY ("device_id") REFERENCES "public"."devices"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "assignments" ADD CONSTRAINT "assignments_custodian_id_custodians_id_fk" FOREIGN KEY ("custodian_id") REFERENCES "public"."custodians"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "devices" ADD CONSTRAINT "devices_current_custodian_id_custodians_id_fk" FOREIGN KEY ("current_custodian_id") REFERENCES "public"."custodians"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "incident_notes" ADD CONSTRAINT "incident_notes_incident_id_incidents_id_fk" FOREIGN KEY ("incident_id") REFERENCES "public"."incidents"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "incidents" ADD CONSTRAINT "incidents_device_id_devices_id_fk" FOREIGN KEY ("device_id") REFERENCES "public"."devices"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "incidents" ADD CONSTRAINT "incidents_custodian_id_custodians_id_fk" FOREIGN KEY ("custodian_id") REFERENCES "public"."custodians"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "stocktake_scans" ADD CONSTRAINT "stocktake_scans_stocktake_id_stocktakes_id_fk" FOREIGN KEY ("stocktake_id") REFERENCES "public"."stocktakes"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "stocktake_scans" ADD CONSTRAINT "stocktake_scans_device_id_devices_id_fk" FOREIGN KEY ("device_id") REFERENCES "public"."devices"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "stocktakes" ADD CONSTRAINT "stocktakes_scope_custodian_id_custodians_id_fk" FOREIGN KEY ("scope_custodian_id") REFERENCES "public"."custodians"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
CREATE UNIQUE INDEX "assignments_one_open_per_device" ON "assignments" USING btree ("device_id") WHERE "assignments"."returned_at" IS NULL;--> statement-breakpoint
CREATE INDEX "assignments_device_idx" ON "assignments" USING btree ("device_id","assigned_at");--> statement-breakpoint
CREATE INDEX "assignments_custodian_idx" ON "assignments" USING btree ("custodian_id","assigned_at");--> statement-breakpoint
CREATE INDEX "audit_events_entity_idx" ON "audit_events" USING btree ("entity_type","entity_id","id");--> statement-breakpoint
CREATE INDEX "audit_events_actor_idx" ON "audit_events" USING btree ("actor","id");--> statement-breakpoint
CREATE INDEX "audit_events_at_idx" ON "audit_events" USING btree ("at","id");--> statement-breakpoint
CREATE INDEX "audit_events_entity_id_idx" ON "audit_events" USING btree ("entity_id","id");--> statement-breakpoint
CREATE INDEX "custodians_kind_idx" ON "custodians" USING btree ("kind","id");--> statement-breakpoint
CREATE INDEX "custodians_active_idx" ON "custodians" USING btree ("active","id");--> statement-breakpoint
CREATE INDEX "custodians_name_trgm_idx" ON "custodians" USING gin (lower("name") gin_trgm_ops);--> statement-breakpoint
CREATE UNIQUE INDEX "devices_asset_tag_key" ON "devices" USING btree (lower("asset_tag") text_pattern_ops);--> statement-breakpoint
CREATE UNIQUE INDEX "devices_serial_number_key" ON "devices" USING btree (lower("serial_number") text_pattern_ops);--> statement-breakpoint
CREATE INDEX "devices_status_idx" ON "devices" USING btree ("status","id");--> statement-breakpoint
CREATE INDEX "devices_kind_idx" ON "devices" USING btree ("kind","id");--> statement-breakpoint
CREATE INDEX "devices_custodian_idx" ON "devices" USING btree ("current_custodian_id","id");--> statement-breakpoint
CREATE INDEX "devices_last_seen_idx" ON "devices" USING btree ("last_seen_at","id");--> statement-breakpoint
CREATE INDEX "idempotency_keys_expires_idx" ON "idempotency_keys" USING btree ("expires_at");--> statement-breakpoint
CREATE INDEX "incident_notes_incident_idx" ON "incident_notes" USING btree ("incident_id","id");--> statement-breakpoint
CREATE UNIQUE INDEX "incidents_reference_key" ON "incidents" USING btree ("reference");--> statement-breakpoint
CREATE INDEX "incidents_status_idx" ON "incidents" USING btree ("status","id");--> statement-breakpoint
CREATE INDEX "incidents_kind_idx" ON "incidents" USING btree ("kind","id");--> statement-breakpoint
CREATE INDEX "incidents_reported_at_idx" ON "incidents" USING btree ("reported_at","id");--> statement-breakpoint
CREATE INDEX "incidents_device_idx" ON "incidents" USING btree ("device_id","id");--> statement-breakpoint
CREATE INDEX "incidents_custodian_idx" ON "incidents" USING btree ("custodian_id","id");--> statement-breakpoint
CREATE INDEX "incidents_ico_overdue_idx" ON "incidents" USING btree ("ico_deadline") WHERE "incidents"."personal_data_at_risk" AND "incidents"."ico_reported_at" IS NULL;--> statement-breakpoint
CREATE UNIQUE INDEX "incidents_one_open_per_device" ON "incidents" USING btree ("device_id") WHERE "incidents"."status" = 'open';--> statement-breakpoint
CREATE INDEX "stocktake_scans_device_idx" ON "stocktake_scans" USING btree ("stocktake_id","device_id");--> statement-breakpoint
CREATE INDEX "stocktake_scans_identifier_idx" ON "stocktake_scans" USING btree ("stocktake_id","identifier_type",lower("identifier"));--> statement-breakpoint
CREATE INDEX "stocktake_scans_device_seen_idx" ON "stocktake_scans" USING btree ("device_id","seen_at");--> statement-breakpoint
CREATE INDEX "stocktakes_status_idx" ON "stocktakes" USING btree ("status","id");