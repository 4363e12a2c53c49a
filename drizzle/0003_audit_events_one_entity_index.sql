-- Served by audit_events_entity_id_idx (entity_id, id): see src/db/schema.ts.
DROP INDEX "audit_events_entity_idx";