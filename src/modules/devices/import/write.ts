/**
 * Writing an import: all rows or none. The rows go into the database as soon as they are checked,
 * in one transaction, so a big file is written while the rest of it is still being read; a file
 * that turns out to have any error is rolled back and refused with its first errors at once.
 *
 * Each batch of 5,000 rows is one statement: the devices, one `device.created` audit event each
 * (written through the audit trail's `auditEventsFrom`, each `after` built by PostgreSQL from the
 * inserted values rather than sent a second time as JSON), and their places in the queue for the
 * hash chain.
 */
import { type SQL, sql } from 'drizzle-orm'
import type { DbOrTx } from '../../../db/client.js'
import { isUniqueViolation } from '../../../db/errors.js'
import { BatchIds } from '../../../db/ids.js'
import type { WriteContext } from '../../../http/context.js'
import { auditEventsFrom } from '../../audit/trail.js'
import type { AssetTagRule } from '../service.js'
import { existingIdentifiers, importProblem } from './check.js'
import { emptyRows, type ImportRows, type ParsedImport, parseImport } from './parse.js'

const INSERT_BATCH = 5_000

/**
 * One statement for rows `[start, end)`: the devices, then their events in file order, each with
 * `after` the `to_jsonb` of a row with toDevice's keys (the same document toDevice gives for the
 * new device). Columns travel as arrays (unnest).
 */
function batchStatement(rows: ImportRows, start: number, end: number, ids: string[], context: WriteContext, createdAt: string): SQL {
  const column = (field: keyof ImportRows) => sql.param(rows[field].slice(start, end))
  return sql`
    WITH u AS MATERIALIZED (
      SELECT * FROM unnest(${sql.param(ids)}::uuid[], ${column('assetTag')}::text[],
                           ${column('kind')}::text[], ${column('make')}::text[],
                           ${column('model')}::text[], ${column('serialNumber')}::text[],
                           ${column('imei')}::text[], ${column('encrypted')}::boolean[],
                           ${column('mdmEnrolled')}::boolean[], ${column('classification')}::text[],
                           ${column('purchasedOn')}::date[], ${column('costPence')}::bigint[])
           WITH ORDINALITY AS u(id, asset_tag, kind, make, model, serial_number, imei, encrypted, mdm_enrolled,
                                classification, purchased_on, cost_pence, n)),
    inserted AS (
      INSERT INTO devices (id, asset_tag, kind, make, model, serial_number, imei, encrypted, mdm_enrolled,
                           classification, purchased_on, cost_pence, created_by, created_at, updated_at)
      SELECT id, asset_tag, kind::device_kind, make, model, serial_number, imei, encrypted, mdm_enrolled,
             classification::classification, purchased_on, cost_pence, ${context.actor}, ${createdAt}::timestamptz, ${createdAt}::timestamptz
      FROM u),
    ${auditEventsFrom(sql`
      SELECT ${context.actor}, 'device.created', 'device', u.id,
             ${context.requestId}, ${context.clientRequestId ?? null}::text, NULL, to_jsonb(device)
      FROM u CROSS JOIN LATERAL (
        SELECT u.id, u.asset_tag AS "assetTag", u.kind, u.make, u.model, u.serial_number AS "serialNumber", u.imei,
               u.encrypted, u.mdm_enrolled AS "mdmEnrolled", u.classification, u.purchased_on AS "purchasedOn",
               u.cost_pence AS "costPence", 'in_stock'::text AS status, NULL::uuid AS "currentCustodianId",
               NULL::text AS "lastSeenAt", NULL::text AS "retiredAt", NULL::text AS "retireReason",
               ${createdAt}::text AS "createdAt", ${createdAt}::text AS "updatedAt", 1 AS version) AS device
      ORDER BY u.n`)}
    SELECT 1`
}

/**
 * Writes the checked rows in batches while the rest of the file is still being checked: one
 * statement at a time, the next one built while the database writes the one before (and never
 * more than that one built ahead, so a big file is not held twice in memory). After a failed
 * statement (the transaction is then aborted) nothing more is sent; `done()` rejects with it.
 */
class BatchWriter {
  private queued = 0
  private readonly ranges: [number, number][] = []
  private pumping: Promise<void> | undefined
  private failure: { error: unknown } | undefined
  private stopped = false
  private readonly ids: BatchIds
  private readonly createdAt: string

  constructor(
    private readonly tx: DbOrTx,
    private readonly context: WriteContext,
    private readonly rows: ImportRows,
  ) {
    const now = Date.now()
    this.ids = new BatchIds(now)
    this.createdAt = new Date(now).toISOString()
  }

  /** Queues the rows checked since the last call: whole batches only, or also the last part batch. */
  queue(all: boolean): void {
    const count = this.rows.line.length
    while (count - this.queued >= INSERT_BATCH || (all && this.queued < count)) {
      const start = this.queued
      this.queued = Math.min(start + INSERT_BATCH, count)
      this.ranges.push([start, this.queued])
    }
    if (!this.pumping && !this.failure && !this.stopped && this.ranges.length > 0) this.pumping = this.pump()
  }

  private next(): SQL | undefined {
    const range = this.ranges.shift()
    if (!range) return undefined
    const [start, end] = range
    return batchStatement(this.rows, start, end, this.ids.next(end - start), this.context, this.createdAt)
  }

  private async pump(): Promise<void> {
    let statement = this.next()
    while (statement && !this.failure && !this.stopped) {
      // Drizzle sends a query when it is awaited: `then` sends this one before the next is built.
      const writing = this.tx.execute(statement).then(() => undefined)
      statement = this.next()
      try {
        await writing
      } catch (error) {
        this.failure = { error }
      }
      statement ??= this.next()
    }
    this.pumping = undefined
  }

  /** Resolves once every queued batch is written; rejects with the first failure. */
  async done(): Promise<void> {
    await this.pumping
    if (this.failure) throw this.failure.error
  }

  /** Sends nothing more, and resolves once the statement under way (if any) has finished. */
  async stop(): Promise<void> {
    this.stopped = true
    await this.pumping
  }
}

/** Thrown inside the transaction to roll back what was written of a file that turned out to have errors. */
class FileHasErrors extends Error {}

/** Imports the CSV `text`: every row, or none and a 422 naming the first bad lines. */
export async function importDevices(db: DbOrTx, context: WriteContext, text: string, assetTagRule: AssetTagRule): Promise<{ created: number }> {
  let checked: ParsedImport | undefined
  try {
    return await db.transaction(async (tx) => {
      const rows = emptyRows()
      const writer = new BatchWriter(tx, context, rows)
      try {
        // Whole batches go to the database while the file is clean so far.
        checked = await parseImport(text, {
          rows,
          progress: (errors) => {
            if (errors === 0) writer.queue(false)
          },
          assetTagRule,
        })
        if (checked.errorCount > 0) throw new FileHasErrors()
        writer.queue(true)
        await writer.done()
        return { created: rows.line.length }
      } finally {
        await writer.stop()
      }
    })
  } catch (error) {
    // Nothing was written. A file with errors gets them, with the lines whose identifiers are
    // registered already; so does a clean file that a unique index refused. Should no registered
    // identifier be found then (someone else's device, renamed since), the refusal stands.
    if (!checked || (checked.errorCount === 0 && !isUniqueViolation(error))) throw error
    const taken = await existingIdentifiers(db, checked.rows)
    if (checked.errorCount === 0 && taken.errorCount === 0) throw error
    throw importProblem(checked, taken)
  }
}
