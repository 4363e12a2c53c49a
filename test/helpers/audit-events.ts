/**
 * Audit events as the database stores them hold digests in place of personal values (see
 * src/modules/audit/personal.ts); tests that read events directly put the values back with this.
 */
import { sql } from 'drizzle-orm'
import { type Database, rowsOf } from '../../src/db/client.js'
import { ERASED, restore } from '../../src/modules/audit/personal.js'

export async function withValues<R extends { id: number | string; before?: unknown; after?: unknown }>(database: Database, rows: readonly R[]): Promise<R[]> {
  if (rows.length === 0) return []
  const values = await database.query<{ key: string; value: string }>(
    `SELECT event_id::text || ':' || digest AS key, value FROM audit_personal_values WHERE event_id = ANY($1::bigint[])`,
    [rows.map((row) => String(row.id))],
  )
  const byKey = new Map(values.map((row) => [row.key, row.value]))
  return rows.map((row) => {
    const lookup = (digest: string) => byKey.get(`${row.id}:${digest}`) ?? ERASED
    return { ...row, ...('before' in row ? { before: restore(row.before, lookup) } : {}), ...('after' in row ? { after: restore(row.after, lookup) } : {}) }
  })
}

/**
 * Inserts an event dated `at`, as a superuser past the triggers (which date every event as it is
 * written): for tests of date filters. Its link is made as any other, by the linker.
 */
export async function insertDatedEvent(database: Database, event: { at: string; actor: string; entityType: string; entityId: string; action?: string }) {
  return database.db.transaction(async (tx) => {
    await tx.execute(sql`SET LOCAL session_replication_role = replica`)
    const [row] = await rowsOf<{ id: number }>(
      tx,
      sql`WITH e AS (
            INSERT INTO audit_events (at, actor, action, entity_type, entity_id)
            VALUES (${event.at}::timestamptz, ${event.actor}, ${event.action ?? `${event.entityType}.updated`}, ${event.entityType}, ${event.entityId}::uuid)
            RETURNING id)
          INSERT INTO audit_unlinked (event_id) SELECT id FROM e RETURNING event_id::int AS id`,
    )
    return row!.id
  })
}
