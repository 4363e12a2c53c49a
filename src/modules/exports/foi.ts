/**
 * The FOI list of lost and stolen devices: what an FOI officer publishes. Only the contract's
 * columns leave the database, so no person, device identifier, make, model or free text can leak
 * whatever the encoder does.
 *
 * Rows are streamed from one consistent snapshot (db/stream.ts), so memory stays flat however
 * many rows there are: the CSV on PostgreSQL as PostgreSQL writes it (`openCopyStream`), the
 * JSON, and the CSV on PGlite, as rows encoded here a batch at a time (`openRowStream`). The row
 * path reached about a third of COPY's rate, under the 0.5 the export must reach (bench/README.md).
 *
 * Every download has a deadline (EXPORT_MAX_SECONDS), counted from its start and never restarted
 * by a chunk sent: a client reading a few bytes a second, which never trips the stall limit, would
 * otherwise hold a database connection for as long as it liked.
 *
 * Encodings (same rows, same order, so the same data gives the same bytes):
 * - CSV: header row, CRLF line ends (RFC 4180), booleans `yes`/`no`, a missing date empty, and
 *   cells that a spreadsheet would run as a formula prefixed with an apostrophe.
 * - JSON: an array of objects with the same fields in camelCase, booleans as booleans and a missing
 *   date as null (no apostrophes: JSON is not opened as a spreadsheet).
 */
import { Readable } from 'node:stream'
import { stringify as stringifySync } from 'csv-stringify/sync'
import { type SQL, sql } from 'drizzle-orm'
import type { Database } from '../../db/client.js'
import { incidents } from '../../db/schema.js'
import { openCopyStream, openRowStream, type RowStream, type TextRow } from '../../db/stream.js'
import { problems } from '../../plugins/problems.js'
import { inPeriod } from '../reports/risk-summary.js'
import type { Period } from '../reports/periods.js'
import type { FoiRecord } from './schemas.js'

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
 * Rows per batch: the unit encoded at once, so one chunk written to the client. Encoded as soon as
 * it is full, so that rows never wait as objects (which would live through garbage collections and
 * be promoted); small enough that a batch dies young.
 */
const BATCH_ROWS = 1000

/**
 * How long an export waits for its client to take the next batch before giving up: a client that
 * stops reading (yet stays connected) must not hold a database connection for ever. A minute, as
 * the default DB_IDLE_IN_TRANSACTION_TIMEOUT_MS.
 */
const STALL_LIMIT_MS = 60_000

const ukDate = (column: SQL) => sql`to_char(${column} AT TIME ZONE 'Europe/London', 'YYYY-MM-DD')`

/**
 * The export's rows in publication order: UK-local date reported, then reference (numerically
 * within a year). Every column as text, as the streams want it: booleans `true`/`false` for the
 * row path, or the CSV's `yes`/`no` when PostgreSQL writes the CSV.
 */
export function foiQuery(period: Period, booleans: 'true/false' | 'yes/no' = 'true/false'): SQL {
  const bool = (value: SQL) => (booleans === 'yes/no' ? sql`CASE WHEN ${value} THEN 'yes' ELSE 'no' END` : sql`${value}::text`)
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

/** A row from its text fields, in foiQuery's (FOI_COLUMNS) order. */
function rowFromText(fields: TextRow): FoiRow {
  return {
    reference: fields[0]!,
    date_reported: fields[1]!,
    item_type: fields[2]!,
    lost_or_stolen: fields[3]!,
    location_category: fields[4]!,
    encrypted: fields[5] === 'true',
    personal_data_at_risk: fields[6] === 'true',
    remote_wipe: fields[7]!,
    recovered: fields[8] === 'true',
    date_recovered: fields[9] ?? null,
    status: fields[10]!,
  }
}

/** Turns a batch of rows into the text sent for them (`csvPart`, `jsonPart`). */
export type Encode = (rows: FoiRow[]) => string

export interface ExportLimits {
  /** How long a download may last from its start, however its client reads (EXPORT_MAX_SECONDS). */
  maxMs: number
}

/** A download's body, and what frees its database connection once the body is done with. */
export interface FoiDownload {
  body: Readable
  close: () => Promise<unknown>
}

/**
 * Opens a download under its deadline. At the deadline the stream gives its connection back and the
 * body is destroyed, so the client's response ends short (never looks complete); one that runs out
 * while still waiting for a connection is a 503.
 */
export async function withDeadline(limits: ExportLimits, open: (signal: AbortSignal) => Promise<FoiDownload>): Promise<FoiDownload> {
  const deadline = new AbortController()
  const timer = setTimeout(() => deadline.abort(problems.unavailable('The export ran past its time limit; retry later.')), limits.maxMs)
  let download: FoiDownload
  try {
    download = await open(deadline.signal)
  } catch (error) {
    clearTimeout(timer)
    throw error
  }
  const { body } = download
  deadline.signal.addEventListener('abort', () => body.destroy(deadline.signal.reason as Error), { once: true })
  body.once('close', () => clearTimeout(timer))
  return download
}

/** The period's FOI rows, batch by batch, each batch encoded as soon as it is read; see openRowStream. */
function openFoiExport(database: Database, period: Period, encode: Encode, limits: ExportLimits, signal: AbortSignal): Promise<RowStream<string>> {
  return openRowStream(database, foiQuery(period), {
    batchSize: BATCH_ROWS,
    encode: (rows) => encode(rows.map(rowFromText)),
    // The statement cannot outlive the download it feeds.
    timeLimitMs: limits.maxMs,
    stallLimitMs: STALL_LIMIT_MS,
    signal,
  })
}

/**
 * The CSV download. On PostgreSQL, PostgreSQL writes it and the service passes the bytes on; it is
 * the same text csvPart makes (tested): every FOI column is a closed vocabulary, so no cell needs
 * quoting or an apostrophe, and none holds a line break, so each LF that COPY ends a record with
 * can become the CRLF of RFC 4180. On PGlite the rows are encoded by csvPart.
 */
export function openFoiCsv(database: Database, period: Period, limits: ExportLimits): Promise<FoiDownload> {
  return withDeadline(limits, async (signal) => {
    if (database.driver !== 'postgres') {
      const { batches, close } = await openFoiExport(database, period, csvPart, limits, signal)
      return { body: toCsv(batches), close }
    }
    const { batches, close } = await openCopyStream(database, foiQuery(period, 'yes/no'), { timeLimitMs: limits.maxMs, stallLimitMs: STALL_LIMIT_MS, signal })
    const crlf = (async function* () {
      // latin1 maps each byte to one character and back: the text is ASCII, and stays as sent.
      for await (const chunk of batches) yield chunk.toString('latin1').replaceAll('\n', '\r\n')
    })()
    return { body: Readable.from(crlf, { objectMode: false }), close }
  })
}

/** The JSON download: rows encoded by jsonPart, batch by batch. */
export function openFoiJson(database: Database, period: Period, limits: ExportLimits): Promise<FoiDownload> {
  return withDeadline(limits, async (signal) => {
    const { batches, close } = await openFoiExport(database, period, jsonPart, limits, signal)
    return { body: toJson(batches), close }
  })
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

/** One row as the JSON object: exactly the fields of the schema the OpenAPI document gives (the compiler holds the keys to it). */
function jsonRecord(row: FoiRow): Record<keyof FoiRecord, unknown> {
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

/** What makes csv-stringify quote a cell: the delimiter, the quote, a line break. */
const NEEDS_QUOTING = /[",\r\n]/

/**
 * A batch of rows as CSV records. Every FOI column is a closed vocabulary (references held to
 * `INC-<year>-<n>` by the table, UK dates, enum values, yes/no), so a record is in practice its
 * cells joined by commas, and is written so; a record with a cell that would need quoting goes
 * through csv-stringify. The result is byte for byte csv-stringify's (tested): going through it
 * for every record cost more than the query itself (see bench/README.md).
 */
export const csvPart: Encode = (rows) => {
  let text = ''
  for (const row of rows) {
    const cells = csvCells(row)
    const line = cells.join(',')
    text += NEEDS_QUOTING.test(line) ? stringifySync([cells], CSV_OPTIONS) : `${line}\r\n`
  }
  return text
}

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
