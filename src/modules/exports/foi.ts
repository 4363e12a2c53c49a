/**
 * The FOI list of lost and stolen devices: what an FOI officer publishes. Only the contract's
 * columns leave the database, so no person, device identifier, make, model or free text can leak
 * whatever the encoder does.
 *
 * Rows are streamed in batches from one consistent snapshot, so memory stays flat however many
 * rows there are:
 * - PostgreSQL: a client of its own from the pool until the query has sent its last row; the one
 *   statement is read off the socket as rows arrive, the socket paused while the client is behind.
 * - PGlite: a server-side cursor (DECLARE … CURSOR / FETCH) inside its `transaction()` callback
 *   (which holds its one connection), handing batches out one at a time; other queries wait until
 *   the export ends.
 *
 * Encodings (same rows, same order, so the same data gives the same bytes):
 * - CSV: header row, CRLF line ends (RFC 4180), booleans `yes`/`no`, a missing date empty, and
 *   cells that a spreadsheet would run as a formula prefixed with an apostrophe.
 * - JSON: an array of objects with the same fields in camelCase, booleans as booleans and a missing
 *   date as null (no apostrophes: JSON is not opened as a spreadsheet).
 */
import { type Duplex, Readable } from 'node:stream'
import type { PGlite } from '@electric-sql/pglite'
import { stringify as stringifySync } from 'csv-stringify/sync'
import { type SQL, sql } from 'drizzle-orm'
import { PgDialect } from 'drizzle-orm/pg-core'
import pg from 'pg'
import pgCopy from 'pg-copy-streams'
import type { Database } from '../../db/client.js'
import { incidents } from '../../db/schema.js'
import { inPeriod } from '../reports/risk-summary.js'
import type { Period } from '../reports/periods.js'

export const FOI_COLUMNS = [
  'reference',
  'date_reported',
  'item_type',
  'lost_or_stolen',
  'location_category',
  'encrypted',
  'personal_data_at_risk',
  'remote_wipe',
  'recovered',
  'date_recovered',
  'status',
] as const

export interface FoiRow {
  reference: string
  date_reported: string
  item_type: string
  lost_or_stolen: string
  location_category: string
  encrypted: boolean
  personal_data_at_risk: boolean
  remote_wipe: string
  recovered: boolean
  date_recovered: string | null
  status: string
}

/**
 * Rows per batch: the unit encoded at once, so one chunk written to the client (about 85 kB of
 * CSV). A batch is encoded as soon as it is full and only its text waits for the client: rows that
 * waited as objects lived through garbage collections, were promoted, and at 200,000 rows the
 * export's peak RSS rose by ~90 MB and a fifth of its time went to the collector (measured).
 * Small enough that a batch dies young (5,000 cost more CPU and memory, measured); on PostgreSQL
 * at most two encoded batches wait, on PGlite one (a FETCH each).
 */
const BATCH_ROWS = 1000
const PGLITE_FETCH = `FETCH ${BATCH_ROWS} FROM foi_export`

/**
 * On PostgreSQL an export is one statement streamed at the client's pace, so the per-statement
 * limit meant for ordinary queries (30 s) would cap how long a download may take: it gets an hour.
 */
const EXPORT_TIME_LIMIT_MS = 60 * 60_000

/**
 * How long an export waits for its client to take the next batch before giving up: a client that
 * stops reading (yet stays connected) must not hold a database connection for ever. A minute, as
 * the default DB_IDLE_IN_TRANSACTION_TIMEOUT_MS (what bounded the cursor this replaced).
 */
const STALL_LIMIT_MS = 60_000

const ukDate = (column: SQL) => sql`to_char(${column} AT TIME ZONE 'Europe/London', 'YYYY-MM-DD')`

/**
 * The export's rows in publication order: UK-local date reported, then reference (numerically
 * within a year). Booleans as booleans, or as the CSV's `yes`/`no` when PostgreSQL writes the CSV.
 */
export function foiQuery(period: Period, booleans: 'boolean' | 'yes/no' = 'boolean'): SQL {
  const bool = (value: SQL) => (booleans === 'boolean' ? value : sql`CASE WHEN ${value} THEN 'yes' ELSE 'no' END`)
  return sql`SELECT ${incidents.reference} AS reference,
    ${ukDate(sql`${incidents.reportedAt}`)} AS date_reported,
    ${incidents.deviceKind}::text AS item_type,
    ${incidents.kind}::text AS lost_or_stolen,
    ${incidents.locationCategory}::text AS location_category,
    ${bool(sql`${incidents.deviceEncrypted}`)} AS encrypted,
    ${bool(sql`${incidents.personalDataAtRisk}`)} AS personal_data_at_risk,
    ${incidents.remoteWipe}::text AS remote_wipe,
    ${bool(sql`(${incidents.status} = 'recovered')`)} AS recovered,
    ${ukDate(sql`${incidents.recoveredAt}`)} AS date_recovered,
    ${incidents.status}::text AS status
  FROM ${incidents}
  WHERE ${inPeriod(period)}
  ORDER BY (${incidents.reportedAt} AT TIME ZONE 'Europe/London')::date, length(${incidents.reference}), ${incidents.reference}`
}

const dialect = new PgDialect()
const copyTo = pgCopy.to

/** A row from its fields as PostgreSQL sends them (text; booleans `t`/`f`), in foiQuery's (FOI_COLUMNS) order. */
function rowFromText(fields: (string | null)[]): FoiRow {
  return {
    reference: fields[0]!,
    date_reported: fields[1]!,
    item_type: fields[2]!,
    lost_or_stolen: fields[3]!,
    location_category: fields[4]!,
    encrypted: fields[5] === 't',
    personal_data_at_risk: fields[6] === 't',
    remote_wipe: fields[7]!,
    recovered: fields[8] === 't',
    date_recovered: fields[9] ?? null,
    status: fields[10]!,
  }
}

/**
 * The export's query with each row handed to `onRow` as it arrives, where pg.Query would collect
 * them all into one result (and parse each through its type parsers); `onEnd` is called once, with
 * the error if it failed.
 */
class StreamedQuery extends pg.Query {
  declare callback: (error: Error | null) => void

  constructor(text: string, values: unknown[], private readonly onRow: (row: FoiRow) => void, onEnd: (error?: Error) => void) {
    super(text, values)
    let ended = false
    this.callback = (error) => {
      if (ended) return
      ended = true
      onEnd(error ?? undefined)
    }
    // pg's own timer for a query (the pool's query_timeout, read from the query object when it has
    // one): a little past the server's limit, like the pool's.
    Object.assign(this, { query_timeout: EXPORT_TIME_LIMIT_MS + 5_000 })
  }

  /** pg calls this for each DataRow message. */
  handleDataRow(message: { fields: (string | null)[] }) {
    this.onRow(rowFromText(message.fields))
  }
}

/**
 * A pooled client of its own for one export on PostgreSQL, with the export's statement limit. The
 * export is one statement, which sees one snapshot, so it needs no transaction around it (and so
 * never leaves one open while the connection goes back). Once released, the connection is someone
 * else's: it is never paused, resumed or destroyed again.
 */
class ExportSession {
  released = false

  private constructor(
    readonly client: pg.PoolClient,
    readonly socket: Duplex,
  ) {}

  static async open(pool: pg.Pool): Promise<ExportSession> {
    const client = await pool.connect()
    const session = new ExportSession(client, (client as unknown as { connection: { stream: Duplex } }).connection.stream)
    try {
      await client.query(`SET statement_timeout = ${EXPORT_TIME_LIMIT_MS}`)
    } catch (error) {
      session.abandon('the FOI export could not begin')
      throw error
    }
    return session
  }

  /** The statement has ended, everything it sent is read: the connection goes back, with the pool's statement limit. */
  finish(): void {
    if (this.released) return
    this.released = true
    this.socket.resume()
    this.client.query('RESET statement_timeout').then(
      () => this.client.release(),
      (error: Error) => this.client.release(error),
    )
  }

  /** Dropping the connection is what stops a statement that is still sending; the pool discards it. */
  abandon(reason: string): void {
    if (this.released) return
    this.released = true
    this.socket.destroy()
    this.client.release(new Error(reason))
  }

  /** For the time a chunk waits for the client: one that stops reading (yet stays connected) must not hold the connection. */
  stallTimer(): () => void {
    const stalled = setTimeout(() => this.abandon('the FOI export client stopped reading'), STALL_LIMIT_MS)
    return () => clearTimeout(stalled)
  }
}

/**
 * PostgreSQL: one plain statement whose rows are read off the socket as they come, not a cursor:
 * PostgreSQL may sort it with parallel workers (never for a cursor), and sends rows without
 * waiting for a FETCH per batch (draining a cursor took twice as long, before any encoding).
 * Memory stays flat because the socket is paused while batches wait for the client, and
 * PostgreSQL then waits in turn.
 */
async function* postgresBatches(pool: pg.Pool, text: string, params: unknown[], encode: Encode): AsyncGenerator<string> {
  const session = await ExportSession.open(pool)
  const ready: string[] = []
  let batch: FoiRow[] = []
  let ended = false
  let failure: Error | undefined
  let wakeConsumer: (() => void) | undefined
  const wake = () => {
    const fn = wakeConsumer
    wakeConsumer = undefined
    fn?.()
  }
  try {
    const onRow = (row: FoiRow) => {
      batch.push(row)
      if (batch.length < BATCH_ROWS) return
      ready.push(encode(batch))
      batch = []
      // Two batches waiting for the client: stop reading until it takes one.
      if (ready.length >= 2) session.socket.pause()
      wake()
    }
    const onEnd = (error?: Error) => {
      ended = true
      if (error) {
        failure = error
        session.abandon('the FOI export query failed')
      } else {
        // The rows not yet sent are all in `ready`, so the connection goes back now.
        if (batch.length > 0) ready.push(encode(batch))
        session.finish()
      }
      wake()
    }
    session.client.query(new StreamedQuery(text, params, onRow, onEnd))
    for (;;) {
      const next = ready.shift()
      if (next) {
        if (ready.length < 2 && !session.released) session.socket.resume()
        const stopTimer = session.stallTimer()
        try {
          yield next
        } finally {
          stopTimer()
        }
        continue
      }
      if (failure) throw failure
      if (ended) return
      await new Promise<void>((resolve) => (wakeConsumer = resolve))
    }
  } finally {
    // Reached also when the consumer stops early (the client went away).
    session.abandon('the FOI export stopped before its query ended')
  }
}

async function* pgliteBatches(client: PGlite, text: string, params: unknown[], encode: Encode): AsyncGenerator<string> {
  const ready: string[] = []
  let finished = false
  let failure: unknown
  let stop = false
  let wakeConsumer: (() => void) | undefined
  let wakeProducer: (() => void) | undefined
  const wake = (which: 'consumer' | 'producer') => {
    const fn = which === 'consumer' ? wakeConsumer : wakeProducer
    if (which === 'consumer') wakeConsumer = undefined
    else wakeProducer = undefined
    fn?.()
  }
  const producer = client
    .transaction(async (tx) => {
      await tx.query(`DECLARE foi_export NO SCROLL CURSOR FOR ${text}`, params)
      while (!stop) {
        const { rows } = await tx.query<FoiRow>(PGLITE_FETCH)
        if (rows.length === 0) break
        ready.push(encode(rows))
        // Wait for the consumer to take this batch before fetching the next one.
        const taken = new Promise<void>((resolve) => (wakeProducer = resolve))
        wake('consumer')
        await taken
      }
      await tx.query('CLOSE foi_export')
    })
    .then(
      () => undefined,
      (error: unknown) => {
        failure = error
      },
    )
    .finally(() => {
      finished = true
      wake('consumer')
    })
  try {
    for (;;) {
      const batch = ready.shift()
      if (batch) {
        yield batch
        wake('producer')
        continue
      }
      if (failure) throw failure
      if (finished) return
      await new Promise<void>((resolve) => (wakeConsumer = resolve))
    }
  } finally {
    stop = true
    wake('producer')
    await producer
  }
}

/** Turns a batch of rows into the text sent for them (`csvPart`, `jsonPart`). */
export type Encode = (rows: FoiRow[]) => string

/** The period's FOI rows, batch by batch, each batch encoded as soon as it is read. */
function foiBatches(database: Database, period: Period, encode: Encode): AsyncGenerator<string> {
  const query = dialect.sqlToQuery(foiQuery(period))
  const client = (database.db as unknown as { $client: unknown }).$client
  return database.driver === 'postgres'
    ? postgresBatches(client as pg.Pool, query.sql, query.params, encode)
    : pgliteBatches(client as PGlite, query.sql, query.params, encode)
}

/**
 * Reads the first batch now, so that a failing query is still an ordinary error response (nothing
 * sent yet), and hands back an iterator of all the batches. Closing the returned stream must call
 * `close()`: a generator that was never iterated does not run its `finally` on its own.
 */
export async function openFoiExport(database: Database, period: Period, encode: Encode) {
  return openedEarly(foiBatches(database, period, encode))
}

async function openedEarly(batches: AsyncGenerator<string>) {
  const first = await batches.next()
  let pending = first.done ? undefined : first.value
  const iterator: AsyncIterableIterator<string> = {
    [Symbol.asyncIterator]() {
      return this
    },
    async next() {
      if (pending) {
        const value = pending
        pending = undefined
        return { value, done: false }
      }
      return batches.next()
    },
    async return() {
      await batches.return(undefined)
      return { value: undefined, done: true }
    },
  }
  return { batches: iterator, close: () => batches.return(undefined) }
}

/**
 * The CSV download. On PostgreSQL, PostgreSQL writes it — `COPY (…) TO STDOUT (FORMAT csv,
 * HEADER)`, the service only passes the bytes on — and it is the same text csvPart makes (tested):
 * every FOI column is a closed vocabulary (references held to `INC-<year>-<n>` by the table, UK
 * dates, enum values, yes/no), so no cell needs quoting or an apostrophe, and none holds a line
 * break, so each LF that COPY ends a record with can become the CRLF of RFC 4180. csv-stringify
 * took three times as long as the query (~3 µs a row). On PGlite csvPart encodes the rows.
 */
export async function openFoiCsv(database: Database, period: Period): Promise<{ body: Readable; close: () => Promise<unknown> }> {
  if (database.driver !== 'postgres') {
    const { batches, close } = await openFoiExport(database, period, csvPart)
    return { body: toCsv(batches), close }
  }
  const pool = (database.db as unknown as { $client: pg.Pool }).$client
  const { batches, close } = await openedEarly(copiedCsv(pool, period))
  return { body: Readable.from(batches, { objectMode: false }), close }
}

/** The JSON download: rows encoded by jsonPart, batch by batch. */
export async function openFoiJson(database: Database, period: Period): Promise<{ body: Readable; close: () => Promise<unknown> }> {
  const { batches, close } = await openFoiExport(database, period, jsonPart)
  return { body: toJson(batches), close }
}

/**
 * COPY takes no parameters, so the period's two instants (the query's only parameters) are
 * written into its text as quoted literals.
 */
function copyStatement(period: Period): string {
  const query = dialect.sqlToQuery(foiQuery(period, 'yes/no'))
  const text = query.sql.replace(/\$(\d+)/g, (_, index: string) => {
    const value = query.params[Number(index) - 1]
    return pg.escapeLiteral(value instanceof Date ? value.toISOString() : String(value))
  })
  return `COPY (${text}) TO STDOUT WITH (FORMAT csv, HEADER)`
}

/** The COPY's bytes as CSV text with CRLF line ends, on a client of its own. */
async function* copiedCsv(pool: pg.Pool, period: Period): AsyncGenerator<string> {
  const session = await ExportSession.open(pool)
  try {
    for await (const chunk of session.client.query(copyTo(copyStatement(period)))) {
      const stopTimer = session.stallTimer()
      try {
        // latin1 maps each byte to one character and back: the text is ASCII, and stays as sent.
        yield (chunk as Buffer).toString('latin1').replaceAll('\n', '\r\n')
      } finally {
        stopTimer()
      }
    }
    session.finish()
  } finally {
    // Reached also when the consumer stops early (the client went away) or the COPY failed.
    session.abandon('the FOI export stopped before its COPY ended')
  }
}

/** A cell a spreadsheet would take for a formula gets a leading apostrophe (CSV injection). */
export function neutraliseCell(value: string): string {
  // A char code switch rather than a regular expression: it runs for every cell of every row.
  switch (value.charCodeAt(0)) {
    case 0x3d: // =
    case 0x2b: // +
    case 0x2d: // -
    case 0x40: // @
    case 0x09: // tab
    case 0x0d: // carriage return
      return `'${value}`
    default:
      return value
  }
}

const yesNo = (value: boolean) => (value ? 'yes' : 'no')

/** One row as the CSV cells, in column order. */
export function csvCells(row: FoiRow): string[] {
  return [
    row.reference,
    row.date_reported,
    row.item_type,
    row.lost_or_stolen,
    row.location_category,
    yesNo(row.encrypted),
    yesNo(row.personal_data_at_risk),
    row.remote_wipe,
    yesNo(row.recovered),
    row.date_recovered ?? '',
    row.status,
  ].map(neutraliseCell)
}

/** One row as the JSON object. */
export function jsonRecord(row: FoiRow) {
  return {
    reference: row.reference,
    dateReported: row.date_reported,
    itemType: row.item_type,
    lostOrStolen: row.lost_or_stolen,
    locationCategory: row.location_category,
    encrypted: row.encrypted,
    personalDataAtRisk: row.personal_data_at_risk,
    remoteWipe: row.remote_wipe,
    recovered: row.recovered,
    dateRecovered: row.date_recovered,
    status: row.status,
  }
}

const CSV_OPTIONS = { record_delimiter: '\r\n', eof: true } as const

/**
 * A batch of rows as CSV records, through csv-stringify: one call per batch. (A csv-stringify
 * stream fed one row at a time cost more than the query itself: a stream chunk and a socket write
 * per row.)
 */
export const csvPart: Encode = (rows) => stringifySync(rows.map(csvCells), CSV_OPTIONS)

/** A batch of rows as the JSON array's elements, without the separator before the first. */
const jsonPart: Encode = (rows) => rows.map((row) => JSON.stringify(jsonRecord(row))).join(',\n')

/** CSV text: the header, then each batch's records (`csvPart`) as one chunk. */
export function toCsv(parts: AsyncIterable<string>): Readable {
  return Readable.from(
    (async function* () {
      yield stringifySync([[...FOI_COLUMNS]], CSV_OPTIONS)
      yield* parts
    })(),
    { objectMode: false },
  )
}

/** A JSON array, each batch's elements (`jsonPart`) as one chunk. */
function toJson(parts: AsyncIterable<string>): Readable {
  return Readable.from(
    (async function* () {
      let first = true
      yield '['
      for await (const part of parts) {
        yield (first ? '\n' : ',\n') + part
        first = false
      }
      yield first ? ']\n' : '\n]\n'
    })(),
    { objectMode: false },
  )
}
