/**
 * The FOI list of lost and stolen devices: what an FOI officer publishes. Only the contract's
 * columns leave the database, so no person, device identifier, make, model or free text can leak
 * whatever the encoder does.
 *
 * Rows are streamed from a server-side cursor (DECLARE … CURSOR / FETCH in a read-only
 * transaction), so memory stays flat however many rows there are:
 * - PostgreSQL: a client of its own from the pool for the length of the export.
 * - PGlite: one connection, so the cursor lives inside its `transaction()` callback (which holds
 *   the connection) and hands batches out one at a time; other queries wait until the export ends.
 *
 * Encodings (same rows, same order, so the same data gives the same bytes):
 * - CSV: header row, CRLF line ends (RFC 4180), booleans `yes`/`no`, a missing date empty, and
 *   cells that a spreadsheet would run as a formula prefixed with an apostrophe.
 * - JSON: an array of objects with the same fields in camelCase, booleans as booleans and a missing
 *   date as null (no apostrophes: JSON is not opened as a spreadsheet).
 */
import { Readable } from 'node:stream'
import type { PGlite } from '@electric-sql/pglite'
import { stringify as stringifySync } from 'csv-stringify/sync'
import { type SQL, sql } from 'drizzle-orm'
import { PgDialect } from 'drizzle-orm/pg-core'
import type pg from 'pg'
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

export const FETCH_SIZE = 1000

const ukDate = (column: SQL) => sql`to_char(${column} AT TIME ZONE 'Europe/London', 'YYYY-MM-DD')`

/** The export's rows in publication order: UK-local date reported, then reference (numerically within a year). */
export function foiQuery(period: Period): SQL {
  return sql`SELECT ${incidents.reference} AS reference,
    ${ukDate(sql`${incidents.reportedAt}`)} AS date_reported,
    ${incidents.deviceKind}::text AS item_type,
    ${incidents.kind}::text AS lost_or_stolen,
    ${incidents.locationCategory}::text AS location_category,
    ${incidents.deviceEncrypted} AS encrypted,
    ${incidents.personalDataAtRisk} AS personal_data_at_risk,
    ${incidents.remoteWipe}::text AS remote_wipe,
    (${incidents.status} = 'recovered') AS recovered,
    ${ukDate(sql`${incidents.recoveredAt}`)} AS date_recovered,
    ${incidents.status}::text AS status
  FROM ${incidents}
  WHERE ${inPeriod(period)}
  ORDER BY (${incidents.reportedAt} AT TIME ZONE 'Europe/London')::date, length(${incidents.reference}), ${incidents.reference}`
}

const dialect = new PgDialect()

async function* postgresBatches(pool: pg.Pool, text: string, params: unknown[]): AsyncGenerator<FoiRow[]> {
  const client = await pool.connect()
  try {
    await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY')
    await client.query(`DECLARE foi_export NO SCROLL CURSOR FOR ${text}`, params)
    for (;;) {
      const { rows } = await client.query<FoiRow>(`FETCH ${FETCH_SIZE} FROM foi_export`)
      if (rows.length === 0) return
      yield rows
    }
  } finally {
    // Reached also when the consumer stops early (the client went away): the transaction ends
    // either way, and a connection that cannot even roll back is discarded, not reused.
    await client.query('ROLLBACK').then(
      () => client.release(),
      (error: Error) => client.release(error),
    )
  }
}

async function* pgliteBatches(client: PGlite, text: string, params: unknown[]): AsyncGenerator<FoiRow[]> {
  const ready: FoiRow[][] = []
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
        const { rows } = await tx.query<FoiRow>(`FETCH ${FETCH_SIZE} FROM foi_export`)
        if (rows.length === 0) break
        ready.push(rows)
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

/** The period's FOI rows, batch by batch, from a server-side cursor. */
export function foiBatches(database: Database, period: Period): AsyncGenerator<FoiRow[]> {
  const query = dialect.sqlToQuery(foiQuery(period))
  const client = (database.db as unknown as { $client: unknown }).$client
  return database.driver === 'postgres'
    ? postgresBatches(client as pg.Pool, query.sql, query.params)
    : pgliteBatches(client as PGlite, query.sql, query.params)
}

/**
 * Reads the first batch now, so that a failing query is still an ordinary error response (nothing
 * sent yet), and hands back an iterator of all the batches. Closing the returned stream must call
 * `close()`: a generator that was never iterated does not run its `finally` on its own.
 */
export async function openFoiExport(database: Database, period: Period) {
  const batches = foiBatches(database, period)
  const first = await batches.next()
  let pending = first.done ? undefined : first.value
  const iterator: AsyncIterableIterator<FoiRow[]> = {
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
 * Batches of rows → CSV text, header first, through csv-stringify: one call and one chunk per
 * batch. (A csv-stringify stream fed one row at a time cost more than the query itself: a stream
 * chunk and a socket write per row.)
 */
export function toCsv(batches: AsyncIterable<FoiRow[]>): Readable {
  return Readable.from(
    (async function* () {
      yield stringifySync([[...FOI_COLUMNS]], CSV_OPTIONS)
      for await (const batch of batches) yield stringifySync(batch.map(csvCells), CSV_OPTIONS)
    })(),
    { objectMode: false },
  )
}

/** Batches of rows → a JSON array, one batch per chunk. */
export function toJson(batches: AsyncIterable<FoiRow[]>): Readable {
  return Readable.from(
    (async function* () {
      let first = true
      yield '['
      for await (const batch of batches) {
        const parts = batch.map((row) => JSON.stringify(jsonRecord(row)))
        yield (first ? '\n' : ',\n') + parts.join(',\n')
        first = false
      }
      yield first ? ']\n' : '\n]\n'
    })(),
    { objectMode: false },
  )
}
