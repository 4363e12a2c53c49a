/**
 * The advisory-lock keys the tests take, named in one place so that none is used for two things
 * or collides with the service's own: 727_274_101 the migrations (src/db/migrate.ts) and
 * 727_274_201 the audit chain (src/modules/audit/trail.ts). test/foundation/locks.test.ts checks.
 */

/** Held while a test process creates a database or builds the migrated template (test/helpers/database.ts). */
export const TEMPLATE_LOCK = 727_274_901

/** The audit gate every audit insert waits on, shared, while a test holds it (test/helpers/audit-gate.ts). */
export const AUDIT_GATE_LOCK = 727_274_902
