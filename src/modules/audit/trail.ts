/**
 * The audit trail: one event per change, written in the same transaction as the change, so a
 * rolled-back change leaves no event and a committed one always has its event.
 *
 * Events form a SHA-256 hash chain (`audit_chain`): each link's `hash` covers its event's content
 * and the previous link's hash. An event is linked just after its transaction commits, not inside
 * it: linking inside meant every write in the service took one lock for the chain's tail and held
 * it until commit, so all writes queued behind each other. Now a write adds its events and a row
 * in `audit_unlinked`; `linkPendingEvents` — run soon after each write's response (at most every 100 ms), at start-up,
 * and before the trail is read or verified — links whatever has committed, in one transaction
 * under an advisory lock, in `seq` order. The chain order is therefore the order events were
 * linked (commit order, near enough), which is what a chain needs: every event in it once, each
 * link fixed by the one before.
 *
 * Both tables refuse UPDATE, DELETE and TRUNCATE (migrations 0001, 0002); signed checkpoints of the
 * chain's head (checkpoints.ts) and `verifyChain` (verify.ts) show whoever changed them anyway.
 */
import { createHash } from 'node:crypto'
import { asc, type SQL, sql } from 'drizzle-orm'
import stringify from 'safe-stable-stringify'
import { type Db, type DbOrTx } from '../../db/client.js'
import { batched } from '../../db/batches.js'
import { preparedStatement } from '../../db/prepared.js'
import { auditChain, auditEvents, auditUnlinked } from '../../db/schema.js'
import type { WriteContext } from '../../http/context.js'

/** Any constant unique to this lock in the service (the migration lock uses another). */
export const AUDIT_CHAIN_LOCK = 727_274_201
const BATCH = 5_000

/** `audit`: events about the trail itself (checkpoints, the upgrade of migration 0006), with entity id NIL_ENTITY_ID. */
export type EntityType = 'custodian' | 'device' | 'assignment' | 'incident' | 'stocktake' | 'audit'
export const NIL_ENTITY_ID = '00000000-0000-0000-0000-000000000000'

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
  /** Present only when the client named its request, so events without one hash as they always did. */
  clientRequestId?: string
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
 * The columns an event is written with, in the order `auditEventsFrom` takes them. Not `at`: the
 * database dates every event as it is written (migration 0006), so no writer can backdate one.
 */
export const AUDIT_EVENT_COLUMNS = sql.raw('actor, action, entity_type, entity_id, request_id, client_request_id, before, after')

/**
 * The one place events are written: CTEs (`audit_inserted`, `audit_queued`) that insert the rows
 * of `events` — a SELECT of AUDIT_EVENT_COLUMNS, in the order the events happened — and queue
 * each for linking. A statement that makes a change can carry its events this way (the import
 * builds each `after` in SQL from the rows it inserts); everything else calls recordAudit.
 *
 * Because an event is written in the transaction of its change, it is also that change's outbox
 * entry: whatever must follow a committed change (linking today, notifications next) reads the
 * events, and a rolled-back change has none.
 */
export function auditEventsFrom(events: SQL): SQL {
  return sql`
    audit_inserted AS (INSERT INTO audit_events (${AUDIT_EVENT_COLUMNS}) ${events} RETURNING id),
    audit_queued AS (INSERT INTO audit_unlinked (event_id) SELECT id FROM audit_inserted)`
}

const value = (name: string) => sql.placeholder(name)

/**
 * A SELECT for `auditEventsFrom` of events sent as arrays, one element per event (unnest keeps
 * their order); `auditEventValues` gives its values. A prepared statement that makes a change can
 * write its events in the same round trip by carrying both (incident reports do).
 */
export const AUDIT_EVENTS_FROM_ARRAYS = sql`
      SELECT u.actor, u.action, u.entity_type, u.entity_id, u.request_id, u.client_request_id,
             u.before::jsonb, u.after::jsonb
      FROM unnest(${value('audit_actors')}::text[], ${value('audit_actions')}::text[], ${value('audit_entity_types')}::text[],
                  ${value('audit_entity_ids')}::uuid[], ${value('audit_request_ids')}::text[], ${value('audit_client_request_ids')}::text[],
                  ${value('audit_befores')}::text[], ${value('audit_afters')}::text[])
           WITH ORDINALITY AS u(actor, action, entity_type, entity_id, request_id, client_request_id, before, after, n)
      ORDER BY u.n`

type AuditRequest = { context: WriteContext; changes: readonly AuditChange[] }
type AuditEvent = { context: WriteContext; change: AuditChange }

const eventsOf = (requests: readonly AuditRequest[]): AuditEvent[] =>
  requests.flatMap(({ context, changes }) => changes.map((change) => ({ context, change })))

function valuesOf(events: readonly AuditEvent[]): Record<string, unknown> {
  return {
    audit_actors: events.map((e) => e.context.actor),
    audit_actions: events.map((e) => e.change.action),
    audit_entity_types: events.map((e) => e.change.entityType),
    audit_entity_ids: events.map((e) => e.change.entityId),
    audit_request_ids: events.map((e) => e.context.requestId),
    audit_client_request_ids: events.map((e) => e.context.clientRequestId ?? null),
    audit_befores: events.map((e) => asJsonText(e.change.before)),
    audit_afters: events.map((e) => asJsonText(e.change.after)),
  }
}

/** The values of AUDIT_EVENTS_FROM_ARRAYS for these requests' events, each with its own request's actor and id. */
export const auditEventValues = (requests: readonly AuditRequest[]) => valuesOf(eventsOf(requests))

const insertAuditEvents = preparedStatement('audit_record', () => sql`WITH ${auditEventsFrom(AUDIT_EVENTS_FROM_ARRAYS)} SELECT 1`)

/**
 * Appends events (in order) for changes made in transaction `tx` by the request in `context`, and
 * queues them for linking.
 */
export function recordAudit(tx: DbOrTx, context: WriteContext, changes: AuditChange | AuditChange[]): Promise<void> {
  return recordAuditOf(tx, [{ context, changes: Array.isArray(changes) ? changes : [changes] }])
}

/**
 * The same for the changes of several requests made in one transaction, each event with its own
 * request's actor and id. One statement per 5,000 events.
 */
export async function recordAuditOf(tx: DbOrTx, requests: readonly AuditRequest[]): Promise<void> {
  const events = eventsOf(requests)
  for (let start = 0; start < events.length; start += BATCH) {
    await insertAuditEvents(tx, valuesOf(events.slice(start, start + BATCH)))
  }
}

type EventRow = typeof auditEvents.$inferSelect

export const contentOf = (event: EventRow, prevHash: string | null): HashedContent => ({
  at: event.at.toISOString(),
  actor: event.actor,
  action: event.action,
  entityType: event.entityType,
  entityId: event.entityId,
  requestId: event.requestId,
  ...(event.clientRequestId !== null ? { clientRequestId: event.clientRequestId } : {}),
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
      // index; as IN (subquery) with statistics taken while the queue was empty, a nested loop
      // over every waiting row: see bench/README.md.)
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

/** Calls that arrive while a run is under way share the next run, which starts after theirs committed. */
const linkRun = batched<'link', void>('audit-links', async (db, batch) => {
  await linkPendingEvents(db as Db)
  return batch.map(() => undefined)
})

/**
 * Runs `linkPendingEvents` for one app: `link()` resolves once everything committed before the
 * call is linked, so a burst of writes costs a run or two, not one each.
 *
 * After a write, `linkSoon()` starts a run at most once per `minIntervalMs`: a run is six round
 * trips whatever it links, and back-to-back runs would be most of what a busy service sends.
 * Events are then linked within that interval; a reader of the trail calls `link()`, which does
 * not wait for the interval (and takes the waiting run with it).
 */
export class AuditLinker {
  private soon: Promise<void> | undefined
  private hurry: (() => void) | undefined
  private lastStarted = -Infinity

  constructor(
    readonly db: Db,
    private readonly minIntervalMs = 100,
  ) {}

  link(): Promise<void> {
    this.hurry?.()
    return this.runNow()
  }

  linkSoon(): Promise<void> {
    if (this.soon) return this.soon
    const wait = this.lastStarted + this.minIntervalMs - Date.now()
    if (wait <= 0) return this.runNow()
    this.soon = new Promise<void>((resolve) => {
      const start = () => {
        clearTimeout(timer)
        this.soon = this.hurry = undefined
        resolve(this.runNow())
      }
      const timer = setTimeout(start, wait)
      this.hurry = start
    })
    return this.soon
  }

  private runNow(): Promise<void> {
    this.lastStarted = Date.now()
    return linkRun(this.db, 'link')
  }
}
