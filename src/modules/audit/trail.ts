/**
 * The audit trail: one event per change, written in the same transaction as the change, so a
 * rolled-back change leaves no event and a committed one always has its event.
 *
 * Events form a SHA-256 hash chain (`audit_chain`): each link's `hash` covers its event's content
 * and the previous link's hash. An event is linked just after its transaction commits, not inside
 * it: linking inside meant every write in the service took one lock for the chain's tail and held
 * it until commit, so all writes queued behind each other (the benchmark's incident reports ran at
 * ~200/s, bounded by commit latency). Now a write adds its events and a row in `audit_unlinked`;
 * `linkPendingEvents` — run soon after each write's response (at most every 100 ms), at start-up,
 * and before the trail is read or verified — links whatever has committed, in one transaction
 * under an advisory lock, in `seq` order. The chain order is therefore the order events were
 * linked (commit order, near enough), which is what a chain needs: every event in it once, each
 * link fixed by the one before.
 *
 * Both tables refuse UPDATE, DELETE and TRUNCATE (migrations 0001, 0002); `verifyChain` finds the
 * first event whose content or link no longer matches, or an event left out of the chain.
 */
import { createHash } from 'node:crypto'
import { asc, eq, gt, type SQL, sql } from 'drizzle-orm'
import stringify from 'safe-stable-stringify'
import { type Db, type DbOrTx, rowsOf } from '../../db/client.js'
import { preparedStatement } from '../../db/prepared.js'
import { auditChain, auditEvents, auditUnlinked } from '../../db/schema.js'
import type { WriteContext } from '../../http/context.js'

/** Any constant unique to this lock in the service (the migration lock uses another). */
const AUDIT_CHAIN_LOCK = 727_274_201
const BATCH = 5_000

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

/** Key order does not matter to jsonb, so the hash is taken over a canonical (sorted-key) form. */
export function eventHash(content: HashedContent): string {
  return createHash('sha256').update(stringify(content) ?? '').digest('hex')
}

const asJsonText = (value: unknown) => (value === undefined || value === null ? null : JSON.stringify(value))

/**
 * The audit part of a statement as CTEs (`audit_inserted`, `audit_queued`): the events, in order,
 * and a row for each in `audit_unlinked`. Its values are placeholders (`audit_*`) filled by
 * `auditValues`, so a statement that contains it can be prepared. For a statement that makes
 * several requests' changes at once (see incidents/report-batches.ts), each event row `u` carries
 * its request's number (`u.request_no`, from 1): `join` can keep only the events of requests whose
 * change went through, and `after` can compute the stored `after` from `u.after` and what the
 * statement made (a new incident's reference).
 */
export function auditEventsCte(options: { join?: SQL; after?: SQL } = {}): SQL {
  const value = (name: string) => sql.placeholder(`audit_${name}`)
  return sql`
    audit_inserted AS (
      INSERT INTO audit_events (at, actor, action, entity_type, entity_id, request_id, before, after)
      SELECT ${value('at')}::timestamptz, u.actor, u.action, u.entity_type, u.entity_id, u.request_id, u.before::jsonb,
             ${options.after ?? sql`u.after::jsonb`}
      FROM unnest(${value('actors')}::text[], ${value('request_ids')}::text[],
                  ${value('actions')}::text[], ${value('entity_types')}::text[], ${value('entity_ids')}::uuid[],
                  ${value('befores')}::text[], ${value('afters')}::text[], ${value('request_nos')}::int[])
           WITH ORDINALITY AS u(actor, request_id, action, entity_type, entity_id, before, after, request_no, n)
      ${options.join ?? sql``}
      ORDER BY u.n
      RETURNING id),
    audit_queued AS (INSERT INTO audit_unlinked (event_id) SELECT id FROM audit_inserted)`
}

/** The values for `auditEventsCte`'s placeholders: these changes, by the request in `context`. At most 5,000. */
export function auditValues(context: WriteContext, changes: AuditChange[]): Record<string, unknown> {
  return auditBatchValues([{ context, changes }])
}

/** The same for several requests' changes in one statement, request number n (from 1) at index n - 1. */
export function auditBatchValues(requests: { context: WriteContext; changes: AuditChange[] }[]): Record<string, unknown> {
  const events = requests.flatMap(({ context, changes }, index) => changes.map((change) => ({ context, change, requestNo: index + 1 })))
  return {
    audit_at: new Date().toISOString(),
    audit_actors: events.map((e) => e.context.actor),
    audit_request_ids: events.map((e) => e.context.requestId),
    audit_actions: events.map((e) => e.change.action),
    audit_entity_types: events.map((e) => e.change.entityType),
    audit_entity_ids: events.map((e) => e.change.entityId),
    audit_befores: events.map((e) => asJsonText(e.change.before)),
    audit_afters: events.map((e) => asJsonText(e.change.after)),
    audit_request_nos: events.map((e) => e.requestNo),
  }
}

const insertAuditEvents = preparedStatement('audit_record', () => sql`WITH ${auditEventsCte()} SELECT 1`)

/**
 * Appends events (in order) for changes made in transaction `tx` by the request in `context`, and
 * queues them for linking. One statement per 5,000 events, the columns sent as arrays (unnest).
 */
export async function recordAudit(tx: DbOrTx, context: WriteContext, changes: AuditChange | AuditChange[]): Promise<void> {
  const list = Array.isArray(changes) ? changes : [changes]
  for (let start = 0; start < list.length; start += BATCH) {
    await insertAuditEvents(tx, auditValues(context, list.slice(start, start + BATCH)))
  }
}

type EventRow = typeof auditEvents.$inferSelect

const contentOf = (event: EventRow, prevHash: string | null): HashedContent => ({
  at: event.at.toISOString(),
  actor: event.actor,
  action: event.action,
  entityType: event.entityType,
  entityId: event.entityId,
  requestId: event.requestId,
  before: event.before,
  after: event.after,
  prevHash,
})

/**
 * Links every committed event still waiting, oldest id first, onto the chain's tail. One linker at
 * a time across all instances (advisory lock); returns how many it linked.
 */
export async function linkPendingEvents(db: Db): Promise<number> {
  return db.transaction(async (tx) => {
    await tx.execute(sql`SELECT pg_advisory_xact_lock(${AUDIT_CHAIN_LOCK})`)
    const [tail] = await tx.select().from(auditChain).orderBy(sql`${auditChain.seq} DESC`).limit(1)
    let seq = tail?.seq ?? 0
    let prevHash = tail?.hash ?? null
    let linked = 0
    for (;;) {
      // The waiting ids as an array, then the events by primary key: a plan that cannot go wrong
      // with the table statistics. (As a join it was once a merge join over the whole events
      // index, 31 ms a run; as IN (subquery) with statistics taken while the queue was empty, a
      // nested loop over every waiting row.)
      const pending = await tx
        .select()
        .from(auditEvents)
        .where(sql`${auditEvents.id} = ANY(ARRAY(${tx.select({ id: auditUnlinked.eventId }).from(auditUnlinked).orderBy(asc(auditUnlinked.eventId)).limit(BATCH)}))`)
        .orderBy(asc(auditEvents.id))
      if (pending.length === 0) break
      const links = pending.map((event) => {
        const hash = eventHash(contentOf(event, prevHash))
        const link = { seq: ++seq, eventId: event.id, prevHash, hash }
        prevHash = hash
        return link
      })
      const column = (pick: (link: (typeof links)[number]) => unknown) => sql.param(links.map(pick))
      // The links, and the same ids off the queue by primary key (one statement, one round trip).
      await tx.execute(sql`
        WITH linked AS (
          INSERT INTO audit_chain (seq, event_id, prev_hash, hash)
          SELECT * FROM unnest(${column((l) => l.seq)}::bigint[], ${column((l) => l.eventId)}::bigint[],
                               ${column((l) => l.prevHash)}::text[], ${column((l) => l.hash)}::text[]))
        DELETE FROM audit_unlinked WHERE event_id = ANY(${column((l) => l.eventId)}::bigint[])`)
      linked += links.length
      if (pending.length < BATCH) break
    }
    return linked
  })
}

/**
 * Runs `linkPendingEvents` for one process: calls that arrive while a run is under way share the
 * next run (which starts after theirs committed), so a burst of writes costs a run or two, not one
 * each. `link()` resolves once everything committed before the call is linked.
 *
 * After a write, `linkSoon()` starts a run at most once per `minIntervalMs`: a run is six round
 * trips whatever it links, and under the benchmark's creates back-to-back runs were over half the
 * statements the service sent. Events are then linked within that interval; a reader of the
 * trail calls `link()`, which does not wait for it.
 */
export class AuditLinker {
  private last: Promise<unknown> = Promise.resolve()
  private waiting: Promise<void> | null = null
  private urgent = false
  private hurry: (() => void) | null = null
  private lastStarted = 0

  constructor(
    private readonly db: Db,
    private readonly minIntervalMs = 100,
  ) {}

  link(): Promise<void> {
    this.urgent = true
    this.hurry?.()
    return this.schedule()
  }

  linkSoon(): Promise<void> {
    return this.schedule()
  }

  private schedule(): Promise<void> {
    if (this.waiting) return this.waiting
    const run = this.last
      .catch(() => {})
      .then(async () => {
        const wait = this.lastStarted + this.minIntervalMs - Date.now()
        if (!this.urgent && wait > 0) {
          await new Promise<void>((resolve) => {
            const timer = setTimeout(resolve, wait)
            this.hurry = () => {
              clearTimeout(timer)
              resolve()
            }
          })
        }
        this.hurry = null
        this.urgent = false
        this.waiting = null
        this.lastStarted = Date.now()
        await linkPendingEvents(this.db)
      })
    this.waiting = run
    this.last = run
    return run
  }
}

export interface ChainVerdict {
  ok: boolean
  checked: number
  firstBadId: number | null
}

/**
 * Walks the whole chain in `seq` order, recomputing every hash and link; then looks for an event
 * that is neither linked nor waiting to be (which only someone past the triggers could cause).
 */
export async function verifyChain(db: DbOrTx, batchSize = 5_000): Promise<ChainVerdict> {
  let checked = 0
  let prevHash: string | null = null
  for (;;) {
    const batch = await db
      .select({ link: auditChain, event: auditEvents })
      .from(auditChain)
      .innerJoin(auditEvents, eq(auditEvents.id, auditChain.eventId))
      .where(gt(auditChain.seq, checked))
      .orderBy(asc(auditChain.seq))
      .limit(batchSize)
    for (const { link, event } of batch) {
      const intact = link.seq === checked + 1 && link.prevHash === prevHash && link.hash === eventHash(contentOf(event, prevHash))
      if (!intact) return { ok: false, checked, firstBadId: event.id }
      prevHash = link.hash
      checked++
    }
    if (batch.length < batchSize) break
  }
  const [left] = await rowsOf<{ id: string }>(
    db,
    sql`SELECT min(e.id) AS id FROM audit_events e
        WHERE NOT EXISTS (SELECT 1 FROM audit_chain c WHERE c.event_id = e.id)
          AND NOT EXISTS (SELECT 1 FROM audit_unlinked u WHERE u.event_id = e.id)`,
  )
  return left?.id != null ? { ok: false, checked, firstBadId: Number(left.id) } : { ok: true, checked, firstBadId: null }
}
