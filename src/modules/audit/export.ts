/**
 * The whole audit trail and its checkpoints, in chain order, as one stream of lines: what
 * `GET /v1/audit-events/export` sends (NDJSON) and what `GET /v1/audit-events/verify` checks, so
 * that the service and an auditor holding an export check the very same thing (verify.ts).
 *
 * - `{"type":"event", seq, id, at, actor, action, entityType, entityId, requestId,
 *   clientRequestId, before, after, prevHash, hash}`: each link of the chain with its event as
 *   stored and hashed — personal values as their digests, never the values (personal.ts).
 *   `at` is the string that was hashed (milliseconds, UTC).
 * - `{"type":"checkpoint", id, at, count, lastEventId, headHash, signature}`: right after the
 *   event at its `count`, so a reader checks each one as it reaches it, in one pass.
 * - last, any event that is neither in the chain nor waiting to be linked, with `seq`, `prevHash`
 *   and `hash` null: only someone past the triggers can write one, and a reader is shown it.
 *
 * Streamed from one snapshot with the FOI export's mechanism (db/stream.ts, `withDeadline`):
 * memory stays flat however long the trail, and a download has EXPORT_MAX_SECONDS.
 */
import { Readable } from 'node:stream'
import { sql } from 'drizzle-orm'
import type { Database } from '../../db/client.js'
import { openRowStream, type RowStream, type TextRow } from '../../db/stream.js'
import { type ExportLimits, type FoiDownload, withDeadline } from '../exports/foi.js'
import type { CheckpointLine, EventLine, TrailLine } from './verify.js'

const BATCH_ROWS = 1000
/** As the FOI export's: a reader that stops for a minute gives its connection back. */
const STALL_LIMIT_MS = 60_000

/**
 * Links and checkpoints merged in chain order: a checkpoint at `count` sorts right after the link
 * with that `seq` (and one whose count the chain no longer reaches, after the last link). For the
 * whole trail PostgreSQL prefers a parallel scan and sort to walking the indexes (as it does for a
 * plain scan of the chain in seq order): the sort is the server's, spilling to disk past
 * work_mem; here only a batch at a time is held. Every column as text, as the stream wants it.
 */
const TRAIL_QUERY = sql`
  SELECT CASE WHEN u.kind = 0 THEN 'event' ELSE 'checkpoint' END, u.pos::text, u.id::text, u.at::text,
         u.actor, u.action, u.entity_type, u.entity_id, u.request_id, u.client_request_id, u.before, u.after,
         u.prev_hash, u.hash, u.last_event_id::text, u.signature
  FROM (
    SELECT 0 AS kind, c.seq AS pos, e.id, e.at, e.actor, e.action, e.entity_type, e.entity_id::text AS entity_id,
           e.request_id, e.client_request_id, e.before::text AS before, e.after::text AS after, c.prev_hash, c.hash,
           NULL::bigint AS last_event_id, NULL::text AS signature
    FROM audit_chain c JOIN audit_events e ON e.id = c.event_id
    UNION ALL
    SELECT 1, k.count, k.id, k.at, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, k.head_hash, k.last_event_id, k.signature
    FROM audit_checkpoints k
    UNION ALL
    SELECT 0, NULL, e.id, e.at, e.actor, e.action, e.entity_type, e.entity_id::text, e.request_id, e.client_request_id,
           e.before::text, e.after::text, NULL, NULL, NULL, NULL
    FROM audit_events e
    WHERE NOT EXISTS (SELECT 1 FROM audit_chain c WHERE c.event_id = e.id)
      AND NOT EXISTS (SELECT 1 FROM audit_unlinked q WHERE q.event_id = e.id)
  ) u
  ORDER BY u.pos NULLS LAST, u.kind, u.id`

/** The driver's text of a timestamptz as the ISO string the chain hashed (what Drizzle reads it as). */
const isoOf = (text: string) => new Date(text).toISOString()

const isEvent = (row: TextRow) => row[0] === 'event'

export function eventLineOf(row: TextRow): EventLine {
  return {
    type: 'event',
    seq: row[1] == null ? null : Number(row[1]),
    id: Number(row[2]),
    at: isoOf(row[3]!),
    actor: row[4]!,
    action: row[5]!,
    entityType: row[6]!,
    entityId: row[7]!,
    requestId: row[8] ?? null,
    clientRequestId: row[9] ?? null,
    before: row[10] == null ? null : JSON.parse(row[10]),
    after: row[11] == null ? null : JSON.parse(row[11]),
    prevHash: row[12] ?? null,
    hash: row[13] ?? null,
  }
}

export function checkpointLineOf(row: TextRow): CheckpointLine {
  return { type: 'checkpoint', id: Number(row[2]), at: isoOf(row[3]!), count: Number(row[1]), lastEventId: Number(row[14]), headHash: row[13]!, signature: row[15]! }
}

export const trailLineOf = (row: TextRow): TrailLine => (isEvent(row) ? eventLineOf(row) : checkpointLineOf(row))

const text = (value: string | null | undefined) => (value == null ? 'null' : JSON.stringify(value))

/**
 * One row as its NDJSON line. The same as `JSON.stringify(trailLineOf(row))` but for the jsonb
 * documents, passed on as PostgreSQL wrote them (valid JSON, the text both drivers parse) rather
 * than parsed and written again for every event.
 */
function ndjsonLineOf(row: TextRow): string {
  if (!isEvent(row)) return `${JSON.stringify(checkpointLineOf(row))}\n`
  return (
    `{"type":"event","seq":${row[1] ?? 'null'},"id":${row[2]},"at":"${isoOf(row[3]!)}","actor":${text(row[4])},"action":${text(row[5])},` +
    `"entityType":${text(row[6])},"entityId":${text(row[7])},"requestId":${text(row[8])},"clientRequestId":${text(row[9])},` +
    `"before":${row[10] ?? 'null'},"after":${row[11] ?? 'null'},"prevHash":${text(row[12])},"hash":${text(row[13])}}\n`
  )
}

/** The trail's rows in chain order, a batch at a time, each batch encoded as soon as it is read. */
export function openTrailRows<T>(database: Database, encode: (rows: TextRow[]) => T, limits: ExportLimits, signal?: AbortSignal): Promise<RowStream<T>> {
  return openRowStream(database, TRAIL_QUERY, {
    batchSize: BATCH_ROWS,
    encode,
    timeLimitMs: limits.maxMs,
    stallLimitMs: STALL_LIMIT_MS,
    ...(signal ? { signal } : {}),
  })
}

/** The export's body (NDJSON, one line per link and per checkpoint) under its deadline. */
export function openTrailExport(database: Database, limits: ExportLimits): Promise<FoiDownload> {
  return withDeadline(limits, async (signal) => {
    const { batches, close } = await openTrailRows(database, (rows) => rows.map(ndjsonLineOf).join(''), limits, signal)
    return { body: Readable.from(batches, { objectMode: false }), close }
  })
}
