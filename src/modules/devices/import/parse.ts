/**
 * Reading and checking a device import file (`POST /v1/devices/import`), without the database:
 * what a file says is judged here alone, so it can be tested without an app, and the writer can
 * start on the good rows while the rest of the file is still being read.
 *
 * The rules are those of `POST /v1/devices` (`CreateDeviceBody`), plus no asset tag or serial
 * number twice in one file. Every bad row is reported as `{ row, column, message }`, `row` being
 * the line number (the header is line 1; empty lines are skipped but counted).
 *
 * Each cell is checked with its own field's schema, the verdict remembered for cells that repeat
 * (kinds, makes, dates); a row with a bad cell is checked again as a whole, so its messages (and
 * their order) are exactly the schema's.
 */
import { Readable } from 'node:stream'
import { parse } from 'csv-parse'
import type { z } from 'zod'
import { CreateDeviceBody, type CreateDeviceInput } from '../schemas.js'

export const IMPORT_COLUMNS = [
  'asset_tag', 'kind', 'make', 'model', 'serial_number', 'imei', 'encrypted', 'mdm_enrolled', 'classification',
  'purchased_on', 'cost_pence',
] as const

type Field = keyof CreateDeviceInput

export interface ImportError {
  row: number
  column: string
  message: string
}

/** The good rows of a file as columns (one array per field), with their line numbers. */
export type ImportRows = { line: number[] } & { [F in Field]-?: Exclude<CreateDeviceInput[F], undefined>[] }

export function emptyRows(): ImportRows {
  return {
    line: [], assetTag: [], kind: [], make: [], model: [], serialNumber: [], imei: [], encrypted: [], mdmEnrolled: [],
    classification: [], purchasedOn: [], costPence: [],
  }
}

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

/** The file fed to the parser a slice at a time, so that records come out while the rest is parsed. */
export const PARSE_SLICE = 64 * 1024

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

/**
 * Parses and checks the file; returns the good rows (appended to `rows`, in file order) and every
 * error. `progress` is called before each yield to the event loop, with the number of errors so far.
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
