-- The client's x-request-id beside the server's own request_id. Null for older events, whose hashed content is unchanged.
ALTER TABLE "audit_events" ADD COLUMN "client_request_id" text;
