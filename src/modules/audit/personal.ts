/**
 * Personal values in the audit trail. The database keeps each one (a name, an e-mail address, a
 * constituency, free text) beside the event, in `audit_personal_values`, and the event's stored
 * before/after — what the chain hashes — holds only `{"$digest": sha256(salt || value)}` in its
 * place: a trigger separates them as events are written (migration 0006), whoever writes them.
 * Erasing a person deletes their values and salts; the digests, and so the chain, do not change.
 *
 * Here the values are put back for readers of the trail, and `"[erased]"` where one was erased.
 */
import { inArray, sql } from 'drizzle-orm'
import { type DbOrTx, rowsOf } from '../../db/client.js'
import { auditPersonalValues } from '../../db/schema.js'

export const ERASED = '[erased]'

type Digested = { $digest: string }

const isDigest = (value: unknown): value is Digested =>
  typeof value === 'object' && value !== null && !Array.isArray(value) && Object.keys(value).length === 1 && typeof (value as Digested).$digest === 'string'

/** `document` with each digest replaced by `lookup`'s value for it. */
export function restore(document: unknown, lookup: (digest: string) => string): unknown {
  if (isDigest(document)) return lookup(document.$digest)
  if (Array.isArray(document)) return document.map((item) => restore(item, lookup))
  if (typeof document === 'object' && document !== null) {
    return Object.fromEntries(Object.entries(document).map(([key, item]) => [key, restore(item, lookup)]))
  }
  return document
}

const mayHoldDigests = (document: unknown) => typeof document === 'object' && document !== null

/** The events as readers see them: their personal values restored, erased ones as "[erased]". */
export async function withPersonalValues<E extends { id: number; entityType: string; before: unknown; after: unknown }>(
  db: DbOrTx,
  events: readonly E[],
): Promise<E[]> {
  const ids = events.filter((e) => (e.entityType === 'custodian' || e.entityType === 'incident') && (mayHoldDigests(e.before) || mayHoldDigests(e.after))).map((e) => e.id)
  if (ids.length === 0) return [...events]
  const rows = await db
    .select({ eventId: auditPersonalValues.eventId, digest: auditPersonalValues.digest, value: auditPersonalValues.value })
    .from(auditPersonalValues)
    .where(inArray(auditPersonalValues.eventId, ids))
  const values = new Map(rows.map((row) => [`${row.eventId}:${row.digest}`, row.value]))
  return events.map((event) => {
    const lookup = (digest: string) => values.get(`${event.id}:${digest}`) ?? ERASED
    return { ...event, before: restore(event.before, lookup), after: restore(event.after, lookup) }
  })
}

/** Deletes the personal values (and salts) of one subject's events; returns how many. */
export async function erasePersonalValues(tx: DbOrTx, subjectType: 'custodian' | 'incident', subjectId: string): Promise<number> {
  const [row] = await rowsOf<{ n: number }>(
    tx,
    sql`WITH erased AS (DELETE FROM audit_personal_values WHERE subject_type = ${subjectType} AND subject_id = ${subjectId}::uuid RETURNING 1)
        SELECT count(*)::int AS n FROM erased`,
  )
  return row?.n ?? 0
}

/** The first event (lowest id) whose kept value no longer matches its digest, if any. */
export async function firstAlteredValue(db: DbOrTx): Promise<number | null> {
  const [row] = await rowsOf<{ id: string | null }>(
    db,
    sql`SELECT min(event_id)::text AS id FROM audit_personal_values
        WHERE encode(sha256(convert_to(salt || value, 'UTF8')), 'hex') <> digest`,
  )
  return row?.id == null ? null : Number(row.id)
}
