/**
 * A gate in front of the audit trail, for tests that need writes held in flight at the worst
 * moment: after their row is written, before their audit event is, inside their transaction.
 * A trigger (in the test's own database only) makes every audit event wait for a shared advisory
 * lock; the test closes the gate by holding that lock exclusively on its admin connection.
 */
import type pg from 'pg'
import { AUDIT_GATE_LOCK } from './locks.js'

export async function installAuditGate(admin: pg.Client): Promise<void> {
  await admin.query(`
    CREATE FUNCTION test_audit_gate() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      PERFORM pg_advisory_xact_lock_shared(${AUDIT_GATE_LOCK});
      RETURN NEW;
    END $$`)
  await admin.query('CREATE TRIGGER test_audit_gate BEFORE INSERT ON audit_events FOR EACH ROW EXECUTE FUNCTION test_audit_gate()')
}

export const closeAuditGate = (admin: pg.Client) => admin.query('SELECT pg_advisory_lock($1)', [AUDIT_GATE_LOCK])
export const openAuditGate = (admin: pg.Client) => admin.query('SELECT pg_advisory_unlock($1)', [AUDIT_GATE_LOCK])
