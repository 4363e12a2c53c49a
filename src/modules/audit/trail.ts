/**
 * The audit trail: one event per change, written in the same transaction as the change, so a
 * rolled-back change leaves no event and a committed one always has its event.
 *
 * Events form a SHA-256 hash chain: each `hash` covers the event's content and the previous
 * event's hash. Appends take a transaction-scoped advisory lock, so two transactions never read
 * the same "previous hash" and the chain never forks; the lock is held to commit, so callers
 * append as the last step of their transaction to keep that window short.
 *
 * The table itself refuses UPDATE, DELETE and TRUNCATE (migration 0001); `verifyChain` finds the
 * first event whose content or link no longer matches, should someone get past that.
 */
import { createHash } from 'node:crypto'
import { asc, desc, gt, sql } from 'drizzle-orm'
import stringify from 'safe-stable-stringify'
import type { DbOrTx } from '../../db/client.js'
import { auditEvents } from '../../db/schema.js'
import type { WriteContext } from '../../http/context.js'

/** Any constant unique to this lock in the service (the migration lock uses another). */
const AUDIT_CHAIN_LOCK = 727_274_201
const INSERT_BATCH = 5_000

export type EntityType = 'custodian' | 'device' | 'assignment' | 'incident' | 'stocktake'

export interface AuditChange {
  action: string
  entityType: EntityType
  entityId: string
  before?: unknown
  after?: unknown
}

interface HashedContent {
  at: string
  actor: string
  action: string
  entityType: string
  entityId: string
  requestId: string | null
  before: unknown
  after: unknown
  prevHash: string | null
}

/** Dates become ISO strings and undefined disappears, exactly as jsonb will give them back. */
function asJson(value: unknown): unknown {
  return value === undefined || value === null ? null : JSON.parse(JSON.stringify(value))
}

/** Key order does not matter to jsonb, so the hash is taken over a canonical (sorted-key) form. */
export function eventHash(content: HashedContent): string {
  return createHash('sha256').update(stringify(content) ?? '').digest('hex')
}

/** Appends events (in order) for changes made in transaction `tx` by the request in `context`. */
export async function recordAudit(tx: DbOrTx, context: WriteContext, changes: AuditChange | AuditChange[]): Promise<void> {
  const list = Array.isArray(changes) ? changes : [changes]
  if (list.length === 0) return
  await tx.execute(sql`SELECT pg_advisory_xact_lock(${AUDIT_CHAIN_LOCK})`)
  const [last] = await tx.select({ hash: auditEvents.hash }).from(auditEvents).orderBy(desc(auditEvents.id)).limit(1)
  let prevHash = last?.hash ?? null
  const at = new Date()
  const rows = list.map((change) => {
    const content: HashedContent = {
      at: at.toISOString(),
      actor: context.actor,
      action: change.action,
      entityType: change.entityType,
      entityId: change.entityId,
      requestId: context.requestId,
      before: asJson(change.before),
      after: asJson(change.after),
      prevHash,
    }
    const hash = eventHash(content)
    prevHash = hash
    return { ...content, at, hash }
  })
  if (rows.length === 1) {
    await tx.insert(auditEvents).values(rows)
    return
  }
  // Bulk writes (imports) go in as column arrays through unnest: a handful of parameters per
  // batch, where a VALUES list would bind (and Drizzle would build) one per cell.
  for (let start = 0; start < rows.length; start += INSERT_BATCH) {
    const batch = rows.slice(start, start + INSERT_BATCH)
    const column = (pick: (row: (typeof rows)[number]) => unknown) => sql.param(batch.map(pick))
    const json = (pick: (row: (typeof rows)[number]) => unknown) =>
      column((row) => {
        const value = pick(row)
        return value === null ? null : JSON.stringify(value)
      })
    await tx.execute(sql`
      INSERT INTO audit_events (at, actor, action, entity_type, entity_id, request_id, before, after, prev_hash, hash)
      SELECT ${at.toISOString()}::timestamptz, ${context.actor}, u.action, u.entity_type, u.entity_id, ${context.requestId},
             u.before::jsonb, u.after::jsonb, u.prev_hash, u.hash
      FROM unnest(${column((r) => r.action)}::text[], ${column((r) => r.entityType)}::text[],
                  ${column((r) => r.entityId)}::uuid[], ${json((r) => r.before)}::text[], ${json((r) => r.after)}::text[],
                  ${column((r) => r.prevHash)}::text[], ${column((r) => r.hash)}::text[])
           WITH ORDINALITY AS u(action, entity_type, entity_id, before, after, prev_hash, hash, n)
      ORDER BY u.n`)
  }
}

export interface ChainVerdict {
  ok: boolean
  checked: number
  firstBadId: number | null
}

/** Walks the whole chain in id order, recomputing every hash and link. */
export async function verifyChain(db: DbOrTx, batchSize = 5_000): Promise<ChainVerdict> {
  let checked = 0
  let prevHash: string | null = null
  let afterId = 0
  for (;;) {
    const batch = await db
      .select()
      .from(auditEvents)
      .where(gt(auditEvents.id, afterId))
      .orderBy(asc(auditEvents.id))
      .limit(batchSize)
    for (const event of batch) {
      const expected = eventHash({
        at: event.at.toISOString(),
        actor: event.actor,
        action: event.action,
        entityType: event.entityType,
        entityId: event.entityId,
        requestId: event.requestId,
        before: event.before,
        after: event.after,
        prevHash: event.prevHash,
      })
      if (event.prevHash !== prevHash || event.hash !== expected) return { ok: false, checked, firstBadId: event.id }
      prevHash = event.hash
      checked++
    }
    const last = batch[batch.length - 1]
    if (!last || batch.length < batchSize) return { ok: true, checked, firstBadId: null }
    afterId = last.id
  }
}
