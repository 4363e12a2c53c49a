/**
 * Bulk import of devices from CSV (`POST /v1/devices/import`, `Content-Type: text/csv`).
 *
 * All rows or none: every row is checked (against the same rules as `POST /v1/devices`, for
 * duplicates within the file, and for asset tags and serials already registered) and every bad
 * row is reported at once as `{ row, column, message }`, `row` being the line number (the header
 * is line 1). Nothing is committed unless the whole file is clean: the rows are inserted in one
 * transaction, in batches of 5,000 per statement, with one `device.created` audit event per
 * device, and a file with any error is rolled back.
 *
 * The CSV parser and the raised body limit belong to this route alone: the plugin is
 * encapsulated (no fastify-plugin), so the rest of the API keeps JSON and the 1 MiB limit.
 *
 * Throughput (100,000 rows in a few seconds on PostgreSQL; the database's own writes are most
 * of it):
 * - each cell is checked with its own field's schema from `CreateDeviceBody`, remembered for
 *   cells that repeat (kinds, makes, dates); a row with a bad cell is checked again as a whole,
 *   so its messages are exactly the schema's;
 * - batches are written while the rest of the file is still being checked, each in one
 *   statement (devices, audit events with `after` built by PostgreSQL, their queue entries for
 *   the hash chain), the next one built while the database writes this one;
 * - registered identifiers are looked up only when the file has errors anyway or an insert hit a
 *   unique index: the transaction is rolled back, and the lookups name every such line.
 */
import { randomBytes, randomInt } from 'node:crypto'
import { Readable } from 'node:stream'
import type { FastifyPluginAsyncZod } from '@fastify/type-provider-zod'
import { parse } from 'csv-parse'
import { type SQL, sql } from 'drizzle-orm'
import { v7 } from 'uuid'
import { z } from 'zod'
import { type DbOrTx, rowsOf } from '../../db/client.js'
import { type WriteContext, writeContext } from '../../http/context.js'
import { ProblemSchema, problems } from '../../plugins/problems.js'
import { CreateDeviceBody, type CreateDeviceInput, ImportResultSchema } from './schemas.js'

export const IMPORT_COLUMNS = [
  'asset_tag', 'kind', 'make', 'model', 'serial_number', 'imei', 'encrypted', 'mdm_enrolled', 'classification',
  'purchased_on', 'cost_pence',
] as const

type Field = keyof CreateDeviceInput

/** Cells are text; these turn them into what the JSON body would hold. Blank optional cells are null. */
function cellBoolean(value: string): unknown {
  const lower = value.toLowerCase()
  return lower === 'true' ? true : lower === 'false' ? false : value
}

function cellInteger(value: string): unknown {
  return /^-?[0-9]+$/.test(value) ? Number(value) : value
}

const cellText = (value: string) => value
const cellOptional = (value: string) => (value === '' ? null : value)
const cellOptionalInteger = (value: string) => (value === '' ? null : cellInteger(value))

/**
 * The body field behind each column (in IMPORT_COLUMNS order), how a cell becomes that field's
 * value, and whether the field's verdicts are remembered per distinct cell: worth it where values
 * repeat from row to row (kinds, makes, dates), not for identifiers. (A date's verdict is taken
 * once per import, so "not in the future" is judged as at the start of it.)
 */
const FIELDS: readonly { column: (typeof IMPORT_COLUMNS)[number]; field: Field; value: (cell: string) => unknown; repeats: boolean }[] = [
  { column: 'asset_tag', field: 'assetTag', value: cellText, repeats: false },
  { column: 'kind', field: 'kind', value: cellText, repeats: true },
  { column: 'make', field: 'make', value: cellText, repeats: true },
  { column: 'model', field: 'model', value: cellText, repeats: true },
  { column: 'serial_number', field: 'serialNumber', value: cellText, repeats: false },
  { column: 'imei', field: 'imei', value: cellOptional, repeats: false },
  { column: 'encrypted', field: 'encrypted', value: cellBoolean, repeats: true },
  { column: 'mdm_enrolled', field: 'mdmEnrolled', value: cellBoolean, repeats: true },
  { column: 'classification', field: 'classification', value: cellText, repeats: true },
  { column: 'purchased_on', field: 'purchasedOn', value: cellOptional, repeats: true },
  { column: 'cost_pence', field: 'costPence', value: cellOptionalInteger, repeats: true },
]

if (FIELDS.some(({ column }, i) => column !== IMPORT_COLUMNS[i])) throw new Error('FIELDS must follow IMPORT_COLUMNS')
const COLUMN_OF_FIELD = new Map<string, string>(FIELDS.map(({ field, column }) => [field, column]))

export const IMPORT_BODY_LIMIT = 64 * 1024 * 1024
const INSERT_BATCH = 5_000
const LOOKUP_BATCH = 10_000

export interface ImportError {
  row: number
  column: string
  message: string
}

/** The JSON body a row stands for, as `POST /v1/devices` would receive it. */
function rowToBody(record: string[]): Record<string, unknown> {
  return Object.fromEntries(FIELDS.map(({ field, value }, i) => [field, value(record[i] ?? '')]))
}

/** Distinct cells remembered per field; past this a field's cells are checked one by one. */
const MAX_REMEMBERED = 10_000
const INVALID = Symbol('invalid')

/**
 * Checks cells against their fields' schemas. `CreateDeviceBody` is a strict object of these
 * fields and nothing else, so a row passes exactly when each of its cells passes its field, with
 * each field's value as output.
 */
class CellChecker {
  private readonly schemas = FIELDS.map(({ field }) => CreateDeviceBody.shape[field] as z.ZodType)
  private readonly remembered = FIELDS.map(({ repeats }) => (repeats ? new Map<string, unknown>() : undefined))

  /** The field's value for this cell, or INVALID. */
  check(index: number, cell: string): unknown {
    const remembered = this.remembered[index]
    if (remembered) {
      const known = remembered.get(cell)
      if (known !== undefined || remembered.has(cell)) return known
    }
    const result = this.schemas[index]!.safeParse(FIELDS[index]!.value(cell))
    const value = result.success ? result.data : INVALID
    if (remembered && remembered.size < MAX_REMEMBERED) remembered.set(cell, value)
    return value
  }
}

/** The good rows of a file as columns (one array per field), with their line numbers. */
export type ImportRows = { line: number[] } & { [F in Field]-?: Exclude<CreateDeviceInput[F], undefined>[] }

/** The file fed to the parser a slice at a time, so that records come out while the rest is parsed. */
const PARSE_SLICE = 64 * 1024

/**
 * The file's records as they are parsed, each with its line number (the header being line 1;
 * empty lines are skipped but counted). A file that is not CSV ends the records with `unreadable`.
 */
async function* readRecords(text: string): AsyncGenerator<{ record: string[]; line: number } | { unreadable: ImportError }> {
  const slices = function* () {
    for (let start = 0; start < text.length; ) {
      let end = Math.min(start + PARSE_SLICE, text.length)
      // Never between the two halves of a surrogate pair: the parser encodes each slice as UTF-8.
      if (end < text.length && /[\uD800-\uDBFF]/.test(text[end - 1]!)) end--
      yield text.slice(start, end)
      start = end
    }
  }
  const parser = Readable.from(slices()).pipe(
    parse({ bom: true, info: true, skip_empty_lines: true, relax_column_count: true, trim: true }),
  )
  try {
    // With `info`, each record comes with its line number.
    for await (const { record, info } of parser as AsyncIterable<{ record: string[]; info: { lines: number } }>) {
      yield { record, line: info.lines }
    }
  } catch (error) {
    const line = Number((error as { lines?: unknown }).lines) || 1
    yield { unreadable: { row: line, column: '', message: `is not readable CSV: ${(error as Error).message.slice(0, 200)}` } }
  } finally {
    parser.destroy()
  }
}

/** Rows checked between two yields to the event loop: a big file must not stall every other request. */
const ROWS_PER_YIELD = 2_000

function emptyRows(): ImportRows {
  return {
    line: [], assetTag: [], kind: [], make: [], model: [], serialNumber: [], imei: [], encrypted: [], mdmEnrolled: [],
    classification: [], purchasedOn: [], costPence: [],
  }
}

/**
 * Parses and checks the file without the database; returns the good rows (appended to `rows`)
 * and every error. `progress` is called before each yield to the event loop.
 */
export async function parseImport(
  text: string,
  rows: ImportRows = emptyRows(),
  progress?: (errors: number) => void,
): Promise<{ rows: ImportRows; errors: ImportError[] }> {
  const errors: ImportError[] = []
  const firstTag = new Map<string, number>()
  const firstSerial = new Map<string, number>()
  const checker = new CellChecker()
  const values: unknown[] = new Array(FIELDS.length)
  const header = IMPORT_COLUMNS.join(',')
  let headerSeen = false
  let index = 0
  for await (const next of readRecords(text)) {
    // An unreadable file gets that one error: what was read of it before says little.
    if ('unreadable' in next) return { rows, errors: [next.unreadable] }
    const { record, line } = next
    if (!headerSeen) {
      if (record.join(',') !== header) break
      headerSeen = true
      continue
    }
    if (index > 0 && index % ROWS_PER_YIELD === 0) {
      progress?.(errors.length)
      await new Promise((resolve) => setImmediate(resolve))
    }
    index++
    if (record.length !== IMPORT_COLUMNS.length) {
      errors.push({ row: line, column: '', message: `has ${record.length} cells; expected ${IMPORT_COLUMNS.length}` })
      continue
    }
    let valid = true
    for (let i = 0; i < FIELDS.length; i++) {
      const value = checker.check(i, record[i]!)
      if (value === INVALID) {
        valid = false
        break
      }
      values[i] = value
    }
    if (!valid) {
      // The whole row through the schema, for its messages (and their order) exactly as `POST /v1/devices` gives them.
      const parsed = CreateDeviceBody.safeParse(rowToBody(record))
      if (!parsed.success) {
        for (const issue of parsed.error.issues) {
          errors.push({ row: line, column: COLUMN_OF_FIELD.get(String(issue.path[0])) ?? '', message: issue.message })
        }
        continue
      }
      FIELDS.forEach(({ field }, i) => (values[i] = parsed.data[field] ?? null))
    }
    let duplicate = false
    const tag = (values[0] as string).toLowerCase()
    const serial = (values[4] as string).toLowerCase()
    const tagSeen = firstTag.get(tag)
    if (tagSeen !== undefined) {
      errors.push({ row: line, column: 'asset_tag', message: `repeats the asset tag of line ${tagSeen}` })
      duplicate = true
    } else firstTag.set(tag, line)
    const serialSeen = firstSerial.get(serial)
    if (serialSeen !== undefined) {
      errors.push({ row: line, column: 'serial_number', message: `repeats the serial number of line ${serialSeen}` })
      duplicate = true
    } else firstSerial.set(serial, line)
    if (duplicate) continue
    rows.line.push(line)
    for (let i = 0; i < FIELDS.length; i++) (rows[FIELDS[i]!.field] as unknown[]).push(values[i])
  }
  if (!headerSeen) return { rows, errors: [{ row: 1, column: '', message: `the header must be exactly: ${header}` }] }
  if (index === 0) errors.push({ row: 2, column: '', message: 'the file has no devices after the header' })
  return { rows, errors }
}

/** Rows whose asset tag or serial number is already registered (any case). */
async function existingIdentifiers(db: DbOrTx, rows: ImportRows): Promise<ImportError[]> {
  const errors: ImportError[] = []
  for (const [field, column, label] of [
    ['assetTag', 'asset_tag', 'asset tag'],
    ['serialNumber', 'serial_number', 'serial number'],
  ] as const) {
    const keys = rows[field].map((value) => value.toLowerCase())
    const taken = new Set<string>()
    for (let start = 0; start < keys.length; start += LOOKUP_BATCH) {
      const found = await rowsOf<{ value: string }>(
        db,
        sql`SELECT lower(${sql.identifier(column)}) AS value FROM devices
            WHERE lower(${sql.identifier(column)}) = ANY(${sql.param(keys.slice(start, start + LOOKUP_BATCH))}::text[])`,
      )
      for (const { value } of found) taken.add(value)
    }
    keys.forEach((key, i) => {
      if (taken.has(key)) errors.push({ row: rows.line[i]!, column, message: `a device with this ${label} is already registered` })
    })
  }
  return errors
}

function importProblem(errors: ImportError[]) {
  errors.sort((a, b) => a.row - b.row)
  const lines = new Set(errors.map((error) => error.row)).size
  return problems.unprocessable(
    `${lines} line(s) of the file cannot be imported; nothing was imported.`,
    errors.map((error) => ({ path: `body.line[${error.row}]${error.column ? `.${error.column}` : ''}`, ...error })),
  )
}

/** A unique index refused a row: some identifier is registered already (or was, a moment ago, by someone else). */
function isUniqueViolation(error: unknown): boolean {
  for (let current = error, depth = 0; depth < 5 && current && typeof current === 'object'; depth++) {
    if ((current as { code?: unknown }).code === '23505') return true
    current = (current as { cause?: unknown }).cause
  }
  return false
}

/**
 * One statement for rows `[start, end)`: the devices, one `device.created` event each (in file
 * order) and each event's place in the queue for the hash chain — what recordAudit
 * (audit/trail.ts) writes, but with each event's `after` made by PostgreSQL from the inserted
 * values (`to_jsonb` of a row with toDevice's keys: the same document toDevice gives for the new
 * device) instead of being sent a second time as JSON. Columns travel as arrays (unnest).
 */
function batchStatement(rows: ImportRows, start: number, end: number, ids: string[], context: WriteContext, createdAt: string): SQL {
  const column = (field: Field) => sql.param(rows[field].slice(start, end))
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
    audit_inserted AS (
      INSERT INTO audit_events (at, actor, action, entity_type, entity_id, request_id, before, after)
      SELECT ${new Date().toISOString()}::timestamptz, ${context.actor}, 'device.created', 'device', u.id,
             ${context.requestId}, NULL, to_jsonb(device)
      FROM u CROSS JOIN LATERAL (
        SELECT u.id, u.asset_tag AS "assetTag", u.kind, u.make, u.model, u.serial_number AS "serialNumber", u.imei,
               u.encrypted, u.mdm_enrolled AS "mdmEnrolled", u.classification, u.purchased_on AS "purchasedOn",
               u.cost_pence AS "costPence", 'in_stock'::text AS status, NULL::uuid AS "currentCustodianId",
               NULL::text AS "lastSeenAt", NULL::text AS "retiredAt", NULL::text AS "retireReason",
               ${createdAt}::text AS "createdAt", ${createdAt}::text AS "updatedAt", 1 AS version) AS device
      ORDER BY u.n
      RETURNING id),
    audit_queued AS (INSERT INTO audit_unlinked (event_id) SELECT id FROM audit_inserted)
    SELECT 1`
}

/**
 * UUIDv7 ids for an import's rows, as newId() (db/ids.ts) makes them but with one call for the
 * random bytes of a whole batch: a call per id costs ~3 µs, a third of a second per 100,000 rows.
 * Each carries the import's creation time and uuid's counter (`seq`), which starts at random and
 * goes up by one per row, so the ids sort in file order.
 */
class ImportIds {
  private seq = randomInt(2 ** 31)

  constructor(private readonly msecs: number) {}

  next(count: number): string[] {
    const random = randomBytes(16 * count)
    const ids = new Array<string>(count)
    for (let i = 0; i < count; i++) ids[i] = v7({ msecs: this.msecs, seq: this.seq++, random: random.subarray(16 * i, 16 * i + 16) })
    return ids
  }
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
  private readonly ids: ImportIds
  private readonly createdAt: string

  constructor(
    private readonly tx: DbOrTx,
    private readonly context: WriteContext,
    private readonly rows: ImportRows,
  ) {
    const now = Date.now()
    this.ids = new ImportIds(now)
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

export async function importDevices(db: DbOrTx, context: WriteContext, text: string): Promise<{ created: number }> {
  let checked: { rows: ImportRows; errors: ImportError[] } | undefined
  try {
    return await db.transaction(async (tx) => {
      // Rows are written as soon as they are checked; a file with errors is rolled back below,
      // so all rows or none are committed.
      const rows = emptyRows()
      const writer = new BatchWriter(tx, context, rows)
      try {
        checked = await parseImport(text, rows, (errors) => {
          if (errors === 0) writer.queue(false)
        })
        if (checked.errors.length > 0) throw new FileHasErrors()
        writer.queue(true)
        await writer.done()
        return { created: rows.line.length }
      } finally {
        await writer.stop()
      }
    })
  } catch (error) {
    // Nothing was written. A file with errors gets them all, with the lines whose identifiers are
    // registered already; so does a clean file that a unique index refused. Should no registered
    // identifier be found then (someone else's device, renamed since), the refusal stands.
    if (!checked || (checked.errors.length === 0 && !isUniqueViolation(error))) throw error
    const taken = await existingIdentifiers(db, checked.rows)
    if (checked.errors.length === 0 && taken.length === 0) throw error
    throw importProblem([...checked.errors, ...taken])
  }
}

const CsvBody = z.string().meta({
  description: `CSV with the header row \`${IMPORT_COLUMNS.join(',')}\`; booleans \`true\`/\`false\`; blank optional cells.`,
})

export const deviceImportRoutes: FastifyPluginAsyncZod = async (app) => {
  // Only CSV is read here; any other type is 415.
  app.removeAllContentTypeParsers()
  app.addContentTypeParser('text/csv', { parseAs: 'string', bodyLimit: IMPORT_BODY_LIMIT }, (_request, body, done) => {
    done(null, body)
  })

  app.post(
    '/v1/devices/import',
    {
      bodyLimit: IMPORT_BODY_LIMIT,
      config: { access: ['security', 'asset_manager'], idempotent: true },
      schema: {
        tags: ['devices'],
        summary: 'Import devices from CSV: all rows or none',
        consumes: ['text/csv'],
        body: CsvBody,
        response: { 201: ImportResultSchema, 413: ProblemSchema, 415: ProblemSchema, 422: ProblemSchema },
      },
    },
    async (request, reply) => {
      const result = await importDevices(app.db, writeContext(request), request.body)
      return reply.code(201).send(result)
    },
  )
}
